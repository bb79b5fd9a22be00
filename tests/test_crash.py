"""An ingest killed part-way leaves every document fully in or fully out, and the next ingest completes it."""

import signal
import subprocess
import sys
import time

import pytest

from rag.pipeline import Pipeline
from rag.retrieval.embeddings import BiEncoder
from rag.retrieval.hybrid import catch_up
from rag.retrieval.store import Store
from tests.conftest import REPO, cli_env, make_settings, run_cli

FILES = 24
# `python -m rag ingest` that kills itself at the worst moment: the second batch's chunks written, its documents'
# records (the commit point) not yet, so that chunks nobody vouches for are certainly left behind.
KILLED_BEFORE_SECOND_COMMIT = """
import os, signal, sys
from rag.cli import main
from rag.retrieval.store import Store

put_records, calls = Store.put_records, []

def put_then_die(self, records):
    calls.append(len(records))
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return put_records(self, records)

Store.put_records = put_then_die
sys.exit(main(["ingest", sys.argv[1]]))
"""


def write_folder(folder, files=FILES):
    folder.mkdir()
    for i in range(files):
        body = " ".join(f"Document {i} sentence {j} talks about topic {i * 7 % 13} and item {j}." for j in range(30))
        (folder / f"doc{i:02}.txt").write_text(body)


def check_all_or_nothing(settings, bi_encoder):
    """Every recorded document has exactly its chunks; return the names in and the stray chunk count."""
    store = Store(settings, bi_encoder)
    try:
        records = {r.name: r for r in store.list_records()}
        for name, record in records.items():
            ids = store.chunk_ids({"$and": [{"source": name}, {"doc_sha": record.sha256}]})
            assert len(ids) == record.chunks, f"{name} is half-written: {len(ids)} of {record.chunks} chunks"
        # The keyword index is never ahead of the registry, and catches up with it on first use.
        committed = {name: record.sha256 for name, record in records.items()}
        assert store.keywords.documents().items() <= committed.items()
        catch_up(store)
        assert store.keywords.documents() == committed
        stray = [s for s, sha in store.chunk_sources() if (s, sha) not in {(r.name, r.sha256) for r in records.values()}]
        # Chunks of unfinished documents never reach an answer, by the bi-encoder or by keywords.
        pool = Pipeline(settings, store, None).retrieve("topic item sentence", rerank=False, candidates=200,
                                                         hybrid=True)
        assert not {s.file for s in pool.candidates} - set(records)
        return set(records), len(stray)
    finally:
        store.close()


# (delay after the first commit, files): the kill lands at a commit boundary, or mid-batch. The delayed kill gets a
# folder big enough that a fast CPU (int8 encoders ingest ~100 chunks/s) is still far from done when it lands.
@pytest.mark.parametrize("delay, files", [(0.0, FILES), (0.7, 5 * FILES)])
def test_an_ingest_killed_part_way_is_all_or_nothing_per_document(tmp_path, bi_encoder, delay, files):
    settings = make_settings(tmp_path, ingest_batch_chunks=16)
    folder = tmp_path / "docs"
    write_folder(folder, files)
    env = cli_env(settings, RAG_INGEST_BATCH_CHUNKS="16")
    proc = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(folder)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # the first batch is committed: kill while later ones are under way
    assert first.startswith("added"), first + proc.stderr.read()
    time.sleep(delay)
    assert proc.poll() is None, "the ingest ended before the kill: the folder is too small for this CPU"
    proc.kill()
    proc.wait()
    done, _ = check_all_or_nothing(settings, bi_encoder)
    assert 0 < len(done) < files, "the kill should land part-way"
    again = run_cli("ingest", str(folder), env=env)
    assert again.returncode == 0, again.stderr
    statuses = [line.split()[0] for line in again.stdout.splitlines()]
    assert statuses.count("unchanged") == len(done) and statuses.count("added") == files - len(done)
    names, stray = check_all_or_nothing(settings, bi_encoder)
    assert len(names) == files and stray == 0, "the next ingest leaves no stray chunks"


def test_chunks_written_before_their_commit_are_ignored_then_cleared(tmp_path, bi_encoder):
    settings = make_settings(tmp_path, ingest_batch_chunks=16)
    folder = tmp_path / "docs"
    write_folder(folder)
    env = cli_env(settings, RAG_INGEST_BATCH_CHUNKS="16")
    killed = subprocess.run([sys.executable, "-c", KILLED_BEFORE_SECOND_COMMIT, str(folder)], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    first_batch = [line.split()[1].rstrip(":") for line in killed.stdout.splitlines()]
    done, stray = check_all_or_nothing(settings, bi_encoder)
    assert done == set(first_batch) and 0 < len(done) < FILES
    assert stray > 0, "the second batch's chunks are in the store, without records"
    again = run_cli("ingest", str(folder), env=env)
    assert again.returncode == 0, again.stderr
    assert f"removed {stray} chunks left by an interrupted ingest" in again.stderr
    statuses = [line.split()[0] for line in again.stdout.splitlines()]
    assert statuses.count("unchanged") == len(done) and statuses.count("added") == FILES - len(done)
    assert check_all_or_nothing(settings, bi_encoder) == (set(f"doc{i:02}.txt" for i in range(FILES)), 0)
