"""Small documents made on the fly, so each test states its own content."""

from __future__ import annotations

import io
import zipfile


def make_pdf(*pages: str, password: str | None = None) -> bytes:
    """A PDF with one page per text (Helvetica, so latin-1 text only)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    if password:
        from fpdf.enums import EncryptionMethod

        pdf.set_encryption(owner_password="owner", user_password=password, encryption_method=EncryptionMethod.RC4)
    return bytes(pdf.output())


def make_image_only_pdf() -> bytes:
    """A 'scan': a page with a drawn rectangle and no text layer."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    return bytes(pdf.output())


def make_docx(*paragraphs: str) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


POLICY = (
    "# Refunds\n\nA refund takes 14 days to process after the parcel arrives at our warehouse.\n\n"
    "# Shipping\n\nOrders ship from our warehouse in Oslo within two working days.\n\n"
    "# Warranty\n\nEvery kettle has a warranty of three years against defects in materials and workmanship. "
    "The warranty does not cover limescale, dropped kettles or damage from the wrong voltage.\n\n"
    "# Opening hours\n\nThe customer service desk is open from 9 to 17 on weekdays and closed on public holidays. "
    "Calls outside these hours reach an answering machine that is checked every morning.\n\n"
    "# Gift cards\n\nGift cards are valid for five years and can be used for any product in the shop, "
    "including kettles on sale. Lost gift cards cannot be replaced.\n"
)
