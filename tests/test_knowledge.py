"""Knowledge documents: reading each format (and the broken ones), chunking, search on both
databases (Swedish and English stemming on PostgreSQL, FTS5 on SQLite), and the admin pages."""

from __future__ import annotations

import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from assistants.models import Assistant
from knowledge import services
from knowledge.chunking import MAX_CHARS, OVERLAP_CHARS, chunk
from knowledge.models import Document, DocumentStatus, Passage
from knowledge.parsing import Section, Unreadable, kind_for_name, parse
from knowledge.search import search_passages
from tests.knowledge_fixtures import docx_file, pdf_scanned, pdf_with_text

pg_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL full-text search")

HOURS = """# Öppettider
Butiken har öppet måndag till fredag 9–18 och lördagar 10–14. Söndagar är det stängt.

# Priser
En stor pizza kostar 129 kronor. Hemleverans kostar 49 kronor inom tullarna.

# Leverans
Vi levererar till Södermalm, Kungsholmen och Vasastan.
"""
FAQ = """# Returns
You can return any product within thirty days. Refunds are paid to the card you used.

# Delivery
We deliver to addresses in Stockholm and Uppsala. Deliveries arrive within two working days.
"""


# -- reading ----------------------------------------------------------------------------------


def test_pdf_text_is_read_page_by_page():
    sections = parse("pdf", pdf_with_text(["Opening hours\nWe open at nine.", "Prices\nA pizza costs 129 kronor."]))
    assert [s.heading for s in sections] == ["Page 1", "Page 2"]
    assert "We open at nine." in sections[0].text and "129 kronor" in sections[1].text


def test_docx_headings_become_sections():
    data = docx_file([("Opening hours", ["We open at nine.", "Closed on Sundays."]), ("Prices", ["129 kronor."])])
    sections = parse("docx", data)
    assert [(s.heading, s.text) for s in sections] == [
        ("Opening hours", "We open at nine.\n\nClosed on Sundays."),
        ("Prices", "129 kronor."),
    ]


def test_markdown_and_text():
    sections = parse("markdown", HOURS.encode())
    assert [s.heading for s in sections] == ["Öppettider", "Priser", "Leverans"]
    assert parse("text", "Just one paragraph.".encode("cp1252")) == [Section("", "Just one paragraph.")]


@pytest.mark.parametrize(
    "kind, data, says",
    [
        ("pdf", pdf_scanned(), "looks scanned"),
        ("pdf", b"%PDF-1.4\nthis is not really a pdf", "damaged"),
        ("pdf", b"hello", "not a PDF"),
        ("docx", b"PK\x03\x04broken zip", "damaged"),
        ("docx", b"plain text", "not a Word .docx"),
        ("text", b"\x00\x01\x02binary", "binary"),
        ("text", b"   \n\n ", "no text"),
    ],
)
def test_unreadable_documents_say_why(kind, data, says):
    with pytest.raises(Unreadable, match=says):
        parse(kind, data)


def test_too_big_and_wrong_types_say_why():
    with override_settings(KNOWLEDGE_MAX_BYTES=100), pytest.raises(Unreadable, match="too big"):
        parse("text", b"x" * 101)
    with pytest.raises(Unreadable, match=r"\.docx"):
        kind_for_name("old.doc")
    with pytest.raises(Unreadable, match="not a type that can be read"):
        kind_for_name("photo.jpg")
    assert kind_for_name("Menu.PDF") == "pdf" and kind_for_name("faq.md") == "markdown"


# -- chunking ---------------------------------------------------------------------------------


def test_chunks_keep_paragraphs_whole_bounded_and_overlapping():
    paragraphs = [f"Paragraph {n} says something useful about topic {n}. " * 4 for n in range(30)]
    chunks = chunk([Section("Topics", "\n\n".join(paragraphs)), Section("Short", "One line.")])
    assert all(len(c.text) <= MAX_CHARS + OVERLAP_CHARS + 3 for c in chunks)
    assert chunks[-1].heading == "Short" and chunks[-1].text == "One line."
    topics = [c for c in chunks if c.heading == "Topics"]
    assert len(topics) > 3
    for before, after in itertools.pairwise(topics):
        carried = after.text.split(" … ", 1)[0]
        assert carried and carried in before.text  # the overlap repeats the end of the passage before
    joined = " ".join(c.text for c in topics)
    assert all(p.strip() in joined for p in paragraphs)  # nothing is lost


def test_a_sentence_longer_than_a_passage_is_cut_at_words():
    chunks = chunk([Section("", "word " * 1000)])
    assert all(len(c.text) <= MAX_CHARS + OVERLAP_CHARS + 3 for c in chunks) and len(chunks) > 4


# -- search -----------------------------------------------------------------------------------


def _document(title: str, text: str, assistant: Assistant, language: str) -> Document:
    document = services.document_create(
        title=title, kind="markdown", text=text, language=language, assistants=[assistant]
    )
    return services.document_process(document_pk=document.pk)


@pytest.fixture
def swedish(db):
    assistant = Assistant.objects.create(name="Pizzeria", instructions="x", language="sv")
    _document("Butiken", HOURS, assistant, "sv")
    return assistant


@pytest.fixture
def english(db):
    assistant = Assistant.objects.create(name="Shop", instructions="x", language="en")
    _document("FAQ", FAQ, assistant, "en")
    return assistant


def test_processing_stores_passages_and_status(swedish):
    document = Document.objects.get(title="Butiken")
    assert document.status == DocumentStatus.READY and document.error == ""
    assert document.passage_count == 3 == document.passages.count()
    assert [p.heading for p in document.passages.all()] == ["Öppettider", "Priser", "Leverans"]


def test_search_finds_the_passage_and_only_the_assistants_own(swedish, english):
    [top, *_] = search_passages(assistant_id=swedish.pk, query="Vad kostar en pizza?", language="sv")
    assert top.heading == "Priser" and top.document_title == "Butiken" and top.score > 0
    assert search_passages(assistant_id=english.pk, query="pizza", language="en") == []
    assert search_passages(assistant_id=swedish.pk, query="?!", language="sv") == []


def test_a_failed_or_reprocessed_document_keeps_search_in_step(swedish):
    document = Document.objects.get(title="Butiken")
    document.text = "# Nytt\nVi har flyttat till Götgatan."
    document.save()
    services.document_process(document_pk=document.pk)
    assert search_passages(assistant_id=swedish.pk, query="pizza", language="sv") == []
    [hit] = search_passages(assistant_id=swedish.pk, query="götgatan", language="sv")
    assert hit.heading == "Nytt"
    document.delete()
    assert Passage.objects.count() == 0
    assert search_passages(assistant_id=swedish.pk, query="götgatan", language="sv") == []


@pg_only
def test_swedish_stemming_on_postgresql(swedish):
    # "levereras" shares the stem of "levererar"; "öppettiden" that of "öppettider", "stängda" of "stängt".
    assert search_passages(assistant_id=swedish.pk, query="levereras det", language="sv")[0].heading == "Leverans"
    assert search_passages(assistant_id=swedish.pk, query="stängda", language="sv")[0].heading == "Öppettider"
    assert (
        search_passages(assistant_id=swedish.pk, query="öppettiden på lördag", language="sv")[0].heading == "Öppettider"
    )
    assert search_passages(assistant_id=swedish.pk, query="pizzor", language="sv")[0].heading == "Priser"
    # A quoted phrase ranks the passage that holds it first.
    assert search_passages(assistant_id=swedish.pk, query='"stor pizza"', language="sv")[0].heading == "Priser"


@pg_only
def test_english_stemming_and_prefixes_on_postgresql(english):
    assert search_passages(assistant_id=english.pk, query="returning a product", language="en")[0].heading == "Returns"
    assert (
        search_passages(assistant_id=english.pk, query="when will my delivery arrive", language="en")[0].heading
        == "Delivery"
    )
    assert search_passages(assistant_id=english.pk, query="refun", language="en")[0].heading == "Returns"  # a prefix
    vector = Passage.objects.filter(heading="Returns").values_list("search_vector", flat=True)[0]
    assert "'return':" in vector and "'refund':" in vector


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite FTS5")
def test_fts5_on_sqlite(english):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM knowledge_passage_fts")
        assert cursor.fetchone()[0] == Passage.objects.count()
    assert search_passages(assistant_id=english.pk, query="returning a product", language="en")[0].heading == "Returns"
    assert search_passages(assistant_id=english.pk, query="refun", language="en")[0].heading == "Returns"
    assert search_passages(assistant_id=english.pk, query="deliveries", language="en")[0].heading == "Delivery"


# -- admin ------------------------------------------------------------------------------------


def test_admin_upload_reads_the_file(admin_client, english):
    data = docx_file([("Opening hours", ["We open at nine every weekday."])])
    response = admin_client.post(
        reverse("admin:knowledge_document_add"),
        {
            "title": "Hours",
            "file": SimpleUploadedFile("hours.docx", data),
            "language": "en",
            "assistants": [english.pk],
        },
        follow=True,
    )
    page = response.content.decode()
    assert "is ready: 1 passages" in page
    document = Document.objects.get(title="Hours")
    assert document.kind == "docx" and document.size_bytes == len(data) and document.file.name.endswith(".docx")
    assert document.file.storage.exists(document.file.name)
    assert search_passages(assistant_id=english.pk, query="open weekday", language="en")[0].document_title == "Hours"


def test_admin_says_why_a_document_failed(admin_client, db):
    response = admin_client.post(
        reverse("admin:knowledge_document_add"),
        {"title": "Scan", "file": SimpleUploadedFile("scan.pdf", pdf_scanned()), "language": "sv"},
        follow=True,
    )
    assert "could not be read" in response.content.decode() and "looks scanned" in response.content.decode()
    assert Document.objects.get(title="Scan").status == DocumentStatus.FAILED
    response = admin_client.post(
        reverse("admin:knowledge_document_add"),
        {"title": "Photo", "file": SimpleUploadedFile("photo.jpg", b"\xff\xd8"), "language": "sv"},
    )
    assert (
        "not a type that can be read" in response.content.decode()
        and not Document.objects.filter(title="Photo").exists()
    )


def test_the_assistant_page_tries_a_question(admin_client, swedish):
    page = admin_client.get(reverse("admin:assistants_assistant_change", args=[swedish.pk])).content.decode()
    assert "Knowledge: try a question" in page and "Knowledge documents" in page
    assert "Butiken – Pizzeria" in page and "object (" not in page
    answer = admin_client.get(reverse("admin:knowledge_try", args=[swedish.pk]), {"q": "vad kostar leverans"}).json()
    assert answer["passages"][0]["document"] == "Butiken" and answer["passages"][0]["score"] > 0
    assert answer["ms"] < 1000
    listing = admin_client.get(reverse("admin:knowledge_document_changelist")).content.decode()
    assert "Pizzeria" in listing  # used by
    change = admin_client.get(
        reverse("admin:knowledge_document_change", args=[Document.objects.get().pk])
    ).content.decode()
    assert "Hemleverans kostar 49 kronor" in change


# -- web pages --------------------------------------------------------------------------------

PAGE = """<html><head><title>Pizzeria Napoli</title><script>var x = "not text";</script></head>
<body><nav>Home | Menu</nav><h1>Opening hours</h1><p>We are open every day 11&ndash;22.</p>
<h2>Delivery</h2><p>We deliver within 5 km.</p><footer>© Napoli</footer></body></html>"""


@pytest.fixture
def web():
    from tests.fakes_http import FakeHttpServer

    with FakeHttpServer() as server:
        yield server


def _page_document(url: str, assistant=None) -> Document:
    document = services.document_create(
        title="", kind="url", source_url=url, language="en", assistants=[assistant] if assistant else []
    )
    return services.document_process(document_pk=document.pk)


def test_a_web_page_is_read_once_and_again_on_demand(web, english, admin_client):
    from tests.fakes_http import Reply

    web.default = Reply(200, PAGE.encode(), {"Content-Type": "text/html; charset=utf-8"})
    document = _page_document(web.url_for("/about"), english)
    assert document.status == DocumentStatus.READY and document.title == "Pizzeria Napoli"
    assert [(p.heading, p.text) for p in document.passages.all()] == [
        ("Opening hours", "We are open every day 11–22."),
        ("Delivery", "We deliver within 5 km."),
    ]
    web.default = Reply(200, PAGE.replace("5 km", "8 km").encode(), {"Content-Type": "text/html"})
    admin_client.post(
        reverse("admin:knowledge_document_changelist"), {"action": "read_again", "_selected_action": [document.pk]}
    )
    assert Passage.objects.get(document=document, heading="Delivery").text == "We deliver within 8 km."
    assert len(web.requests) == 2


@pytest.mark.parametrize(
    "reply, says",
    [
        ((404, b"gone", {"Content-Type": "text/html"}), "HTTP 404"),
        ((200, b"\x89PNG", {"Content-Type": "image/png"}), "not a web page or text (it sends image/png)"),
        ((200, b"<html><body><script>app()</script></body></html>", {"Content-Type": "text/html"}), "no text"),
        ((200, b"<p>" + b"x" * 300 + b"</p>", {"Content-Type": "text/html"}), "too big"),
    ],
)
def test_unreadable_web_pages_say_why(web, db, reply, says):
    from tests.fakes_http import Reply

    web.default = Reply(*reply)
    with override_settings(KNOWLEDGE_MAX_BYTES=200):
        document = _page_document(web.url_for("/page"))
    assert document.status == DocumentStatus.FAILED and says in document.error


def test_a_slow_web_page_is_given_up_on(web, db):
    from tests.fakes_http import Reply

    web.default = Reply(200, PAGE, {"Content-Type": "text/html"}, delay=2.0)
    with override_settings(KNOWLEDGE_FETCH_TIMEOUT=0.3):
        document = _page_document(web.url_for("/slow"))
    assert document.status == DocumentStatus.FAILED and "did not answer within 0.3 seconds" in document.error


# -- hybrid ranking with embeddings -----------------------------------------------------------

MENU = """# Menu
Pizza, pizza and more pizza from our oven.

# Prices
Every large pizza costs 129 kronor, and the small ones cost 99 kronor each day.
"""
MEANINGS = (("price", "cost", "much", "kronor"), ("oven", "bake", "menu"), ("pizza",))


def fake_embedding(text: str) -> list[float]:
    """A vector of what a text is about: money, baking, pizza (enough to tell the passages apart)."""
    lower = text.lower()
    return [float(any(word in lower for word in words)) for words in MEANINGS]


@pytest.fixture
def embedder(web, settings):
    from tests.fakes_http import Reply

    def answer(request):
        body = request.json()
        return Reply(200, {"data": [{"index": n, "embedding": fake_embedding(t)} for n, t in enumerate(body["input"])]})

    web.handler = answer
    settings.KNOWLEDGE_EMBEDDINGS, settings.OPENAI_API_KEY = True, "sk-test"
    settings.KNOWLEDGE_EMBEDDINGS_URL = web.url_for("/v1/embeddings")
    return web


def test_embeddings_rerank_the_full_text_candidates(embedder, english, settings):
    document = _document("Menu", MENU, english, "en")
    assert [p.embedding for p in document.passages.all()] == [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]
    request = embedder.requests[-1]  # the FAQ before it was embedded too
    assert (
        request.json()["input"][0].startswith("Menu\n")
        and request.json()["model"] == "text-embedding-3-small"
        and request.headers["authorization"] == "Bearer sk-test"
    )

    question = "how much is a pizza"
    assert search_passages(assistant_id=english.pk, query=question, language="en")[0].heading == "Prices"
    assert embedder.requests[-1].json()["input"] == [question]
    settings.KNOWLEDGE_EMBEDDINGS = False  # full text alone prefers the passage that says "pizza" most
    assert search_passages(assistant_id=english.pk, query=question, language="en")[0].heading == "Menu"


def test_without_the_embeddings_service_full_text_still_answers(embedder, english):
    from tests.fakes_http import Reply

    embedder.handler = lambda request: Reply(500, {"error": "down"})
    document = _document("Menu", MENU, english, "en")
    assert document.status == DocumentStatus.READY and [p.embedding for p in document.passages.all()] == [None, None]
    assert search_passages(assistant_id=english.pk, query="how much is a pizza", language="en")[0].heading == "Menu"
