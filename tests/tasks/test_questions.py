"""Questions mined from documents: readers, passages, the rule-based proposer on real paragraphs, the filters,
an OpenAI-compatible proposer against a fake server on loopback, and `rlvr questions` end to end."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlvr.cli import main
from rlvr.tasks.datasets import DatasetTask
from rlvr.tasks.questions import Proposal, mine_questions
from rlvr.tasks.questions.documents import DocumentError, read_document, split_passages
from rlvr.tasks.questions.filters import answer_in_passage, reference, rejection
from rlvr.tasks.questions.llm import LLMProposer, openai_complete, parse_reply
from rlvr.tasks.questions.rules import propose_rules

# Real paragraphs: the GNU GPL version 3 (section 8) and the bzip2 1.0.8 manual (sections 2.4 and 2.5).
GPL = (
    "Moreover, your license from a particular copyright holder is reinstated permanently if the copyright "
    "holder notifies you of the violation by some reasonable means, this is the first time you have received "
    "notice of violation of this License (for any work) from that copyright holder, and you cure the "
    "violation prior to 30 days after your receipt of the notice."
)
BZIP2 = (
    "As a self-check for your protection, bzip2 uses 32-bit CRCs to make sure that the decompressed version "
    "of a file is identical to the original. Random data (including the output of most file compressors) "
    "is coded at about 8.05 bits per byte, giving an expansion of around 0.5%.\n\n"
    "For files compressed with the default 900k block size, bunzip2 will require about 3700 kbytes to "
    "decompress. Use bzip2 version 1.0.8 or later; see section 3.4 and pages 10 to 12."
)


def test_rule_proposer_on_real_paragraphs():
    props = {p.answer: p for p in propose_rules(GPL) + propose_rules(BZIP2)}
    assert set(props) == {
        "30 days",
        "8.05 bits",
        "0.5%",
        "3700 kbytes",
    }  # no version, section, page or 32-bit
    assert props["30 days"].question.endswith(
        "cure the violation prior to how many days after your receipt of the notice?"
    )
    assert reference(props["3700 kbytes"]) == {"value": 3700, "unit": "kbytes"}
    assert reference(props["0.5%"]) == {"value": 0.5, "unit": "%"}
    seen: set[str] = set()
    assert all(rejection(p, GPL + BZIP2, seen) is None for p in props.values())


def test_filters_name_each_reason():
    passage = "The bridge is 320 metres long and opened in 1932 after 1,000 days of work."
    seen: set[str] = set()
    assert rejection(Proposal("How long is the bridge?", "320 metres"), passage, seen) is None
    assert rejection(Proposal("How long is the bridge?", "320 metres"), passage, seen) == "duplicate"
    assert (
        rejection(Proposal("How tall is the bridge?", "95 metres"), passage, seen) == "answer_not_in_passage"
    )
    assert (
        rejection(Proposal("Is the 320 metres bridge long?", "320 metres"), passage, seen)
        == "question_contains_answer"
    )
    assert rejection(Proposal("When did it open, 1932?", "1932"), passage, seen) == "question_contains_answer"
    assert (
        rejection(Proposal("How long did the work take?", "1000 days"), passage, seen) is None
    )  # 1,000 = 1000
    assert (
        rejection(Proposal("What did the work take?", "days of work", "numeric"), passage, seen)
        == "answer_unparsable"
    )
    assert rejection(Proposal("no question mark", "1932"), passage, seen) == "malformed"
    assert not answer_in_passage(Proposal("q?", "1933"), passage)


def test_documents_of_every_format(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "a.txt").write_text("First paragraph is here and long enough\nto be wrapped.\n\nSecond one.")
    (tmp_path / "b.md").write_text(
        "# Title\n\nSee [the docs](http://x) and **bold**.\n\n```\ncode 123 bytes\n```\n"
    )
    (tmp_path / "c.html").write_text(
        "<html><head><style>p{}</style></head><body><h1>Head</h1>"
        "<p>The bridge is <b>320</b> metres long.</p><script>var x=5;</script></body></html>"
    )
    (tmp_path / "d.txt.gz").write_bytes(gzip.compress(b"Compressed text of 12 lines."))
    fig = plt.figure()
    fig.text(0.1, 0.5, "The bridge opened in 1932.")
    fig.savefig(tmp_path / "e.pdf")
    plt.close(fig)
    assert "long enough\nto be wrapped" in read_document(tmp_path / "a.txt")
    md = read_document(tmp_path / "b.md")
    assert "the docs" in md and "http" not in md and "**" not in md and "123 bytes" not in md
    html = read_document(tmp_path / "c.html")
    assert "The bridge is 320 metres long." in " ".join(html.split()) and "var x" not in html
    assert read_document(tmp_path / "d.txt.gz") == "Compressed text of 12 lines."
    assert "opened in 1932" in read_document(tmp_path / "e.pdf")
    (tmp_path / "f.docx").write_text("x")
    with pytest.raises(DocumentError, match=r"f\.docx: unknown document type"):
        read_document(tmp_path / "f.docx")
    (tmp_path / "g.pdf").write_text("not a pdf")
    with pytest.raises(DocumentError, match=r"g\.pdf: not a readable PDF"):
        read_document(tmp_path / "g.pdf")


def test_passages_keep_paragraphs_and_cut_long_ones():
    text = (
        "Intro.\n\n"
        + " ".join(f"Sentence number {i} is here." for i in range(60))
        + "\n\nShort tail paragraph here."
    )
    passages = split_passages(text, max_chars=300, min_chars=20)
    assert all(len(p) <= 300 for p in passages) and len(passages) > 5
    assert all(p.rstrip().endswith(".") for p in passages)


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions with canned proposals: good, absent, leaking, unparsable, garbage."""

    replies: list[str] = []
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append(body)
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            return
        content = FakeOpenAI.replies[(len(FakeOpenAI.requests) - 1) % len(FakeOpenAI.replies)]
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeOpenAI.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_endpoint_proposer_against_a_fake_server(tmp_path, fake_server, capsys):
    FakeOpenAI.replies = [
        "```json\n"
        + json.dumps(
            [
                {
                    "question": "How long does a licensee have to cure a violation after notice?",
                    "answer": "30 days",
                    "verifier": "numeric",
                },
                {
                    "question": "How many days of grace does the licence give after cessation?",
                    "answer": "45 days",
                    "verifier": "numeric",
                },
                {"question": "Is the cure period 30 days?", "answer": "30 days", "verifier": "numeric"},
                {"question": "Which document is this from?", "answer": "License", "verifier": "exact"},
                {"question": "What follows the violation?", "answer": "the notice", "verifier": "math"},
            ]
        )
        + "\n```"
    ] * 2 + ["I cannot help with that."]
    doc = tmp_path / "gpl.txt"  # the second passage repeats the first's fact: its proposals are duplicates
    doc.write_text(GPL + "\n\n" + GPL.replace("Moreover, your", "Your") + "\n\n" + BZIP2)
    out = tmp_path / "q.jsonl"
    assert (
        main(["questions", str(doc), "--out", str(out), "--endpoint", fake_server, "--model", "fake-1"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["passages"] == 4 and summary["proposals"] == 15 and summary["proposer_failures"] == 1
    rejected = summary["rejected"]
    assert rejected["answer_not_in_passage"] >= 2 and rejected["question_contains_answer"] >= 1
    assert rejected["answer_unparsable"] >= 1 and rejected["duplicate"] >= 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["answer_text"] for r in rows} == {"30 days", "License"}
    assert all(r["answer_text"].casefold() in r["passage"].casefold() for r in rows)
    assert (
        FakeOpenAI.requests[0]["model"] == "fake-1"
        and "Passage:" in FakeOpenAI.requests[0]["messages"][1]["content"]
    )
    task = DatasetTask(out, eval_size=1)  # the output is a dataset file as it is
    p = next((q for q in task.eval_problems() if q.meta["verifier"] == "numeric"), task.train_problem(0))
    assert task.verify(p, f"<answer>{p.meta['fields']['answer_text']}</answer>").correct


def test_endpoint_errors_are_counted_not_raised(fake_server):
    proposer = LLMProposer(openai_complete(fake_server.replace("/v1", "/nope"), "m", retries=0), "x")
    assert proposer("some passage") == [] and proposer.failures == 1
    assert parse_reply('[{"question": "Q?", "answer": 3}]', "x")[0].answer == "3"
    assert parse_reply("no json", "x") is None


def test_rules_cli_end_to_end_loads_as_a_dataset(tmp_path, capsys):
    html = tmp_path / "manual.html"
    html.write_text("<html><body>" + "".join(f"<p>{p}</p>" for p in BZIP2.split("\n\n")) + "</body></html>")
    (tmp_path / "gpl.txt").write_text(GPL)
    out = tmp_path / "out" / "questions.jsonl"
    assert main(["questions", str(html), str(tmp_path / "gpl.txt"), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["accepted"] == 4 and set(summary["documents"]) == {str(html), str(tmp_path / "gpl.txt")}
    rows, _ = mine_questions([tmp_path / "gpl.txt"], propose_rules)
    assert rows[0]["source"] == str(tmp_path / "gpl.txt") and rows[0]["passage"] == GPL
    task = DatasetTask(out, eval_size=1, template="{passage}\n\nQuestion: {question}")
    problem = task.train_problem(0)
    assert problem.prompt.startswith(problem.meta["fields"]["passage"][:20])
    assert main(["questions", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2


def test_local_hf_model_proposer_runs(tmp_path):
    from rlvr.models.loading import save_policy
    from rlvr.models.tiny import build_tiny_llama
    from rlvr.models.tokenizer import build_char_tokenizer
    from rlvr.tasks.questions.llm import hf_complete

    tokenizer = build_char_tokenizer()
    save_policy(
        build_tiny_llama(
            tokenizer,
            hidden_size=16,
            num_layers=1,
            num_heads=2,
            intermediate_size=32,
            max_position_embeddings=2048,
        ),
        tokenizer,
        tmp_path / "tiny",
    )
    proposer = LLMProposer(hf_complete(str(tmp_path / "tiny"), max_new_tokens=4), "hf:tiny")
    assert proposer(GPL) == [] and proposer.failures == 1  # an untrained model's reply is no JSON list
