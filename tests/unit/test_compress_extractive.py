"""Extractive compression: segmentation, what is never touched, budgets, relevance, prefix stability."""

from __future__ import annotations

import pytest

from thrifty.compress.base import Budget, TokenCache
from thrifty.compress.extractive import Extractor, Weights
from thrifty.compress.prefix import first_unstable
from thrifty.compress.segment import Context, segment
from thrifty.compress.sentences import split_sentences

TOKENS = TokenCache()

FILLER = [
    "The annual rainfall in the northern valley varies between wet and dry years.",
    "Local farmers grow barley, oats and potatoes on the terraced hillsides.",
    "A narrow-gauge railway once connected the valley to the coastal port.",
    "The regional museum displays tools from the early mining period.",
    "Tourism grew after a paved road was completed across the pass.",
    "Several small chapels date from the late medieval period.",
]
ANSWER = "The Velmar bridge was designed by the engineer Ada Kristensen in 1931."
CODE = "```python\ndef velmar_load(span):\n    # load per metre\n    return span * 4.2\n```"
TABLE = "| bridge | length |\n|---|---|\n| Velmar | 212 m |\n| Osk | 98 m |"


def doc(i: int, extra: str = "") -> str:
    sentences = [FILLER[(i + k) % len(FILLER)] for k in range(5)]
    return " ".join(sentences) + (" " + extra if extra else "")


def rag_prompt(question: str = "Who designed the Velmar bridge?") -> str:
    docs = [doc(0), doc(1, ANSWER), doc(2), doc(3), doc(4)]
    sections = "\n\n".join(f"Document {i + 1}: Valley notes {i + 1}\n{d}" for i, d in enumerate(docs))
    return f"Use the documents to answer.\n\n{sections}\n\nQuestion: {question}"


def extractor(**kw) -> Extractor:
    return Extractor(TOKENS, min_context_tokens=0, **kw)


def test_sentence_split_keeps_every_character():
    text = "Dr. Smith et al. measured it (Fig. 2). It rose 3.5 %! Did J. Doe agree? Yes.\nNext."
    pieces = split_sentences(text)
    assert "".join(pieces) == text
    assert pieces[0] == "Dr. Smith et al. measured it (Fig. 2). "
    items = split_sentences("Steps:\n- one\n- two\n  more\n- three")
    assert items == ["Steps:\n", "- one\n", "- two\n  more\n", "- three"]


def test_segmentation_by_xml_tags():
    text = "Answer from the sources.\n<documents>\n<document id=1>First. Second.</document>\n" \
           "<document id=2>Third.</document>\n</documents>\nWhat is third?"  # fmt: skip
    seg = segment(text)
    assert [c.head for c in seg.contexts] == ["<document id=1>", "<document id=2>"]
    assert [u.text for u in seg.contexts[0].units] == ["First. ", "Second."]
    assert seg.question.strip() == "What is third?"
    kept = "".join(p for p in seg.pieces if isinstance(p, str))
    assert "Answer from the sources." in kept and "<documents>" in kept


def test_segmentation_by_markers_with_titles_and_question_line():
    seg = segment(rag_prompt())
    assert len(seg.contexts) == 5
    assert seg.contexts[0].head == "Document 1: Valley notes 1\n"
    assert seg.question == "Question: Who designed the Velmar bridge?"
    assert seg.pieces[0] == "Use the documents to answer.\n\n"


def test_segmentation_implicit_and_without_question_marker():
    text = "Read this:\n\nPara one is here.\n\nPara two is here.\n\nWhat does para two say?"
    seg = segment(text)
    assert seg.pieces[0].strip() == "Read this:" and seg.question == "What does para two say?"
    assert [u.text.strip() for u in seg.contexts[0].units] == ["Para one is here.", "Para two is here."]
    seg = segment("Context:\nAlpha is first. Beta is second.\n\nWhich is second?")
    assert seg.question == "Which is second?" and isinstance(seg.pieces[0], Context)
    assert segment("Just a short question?").contexts == []


def test_keeps_the_relevant_sentence_and_the_question_within_budget():
    text = rag_prompt()
    result = extractor().extract(text, Budget(ratio=0.3))
    assert ANSWER in result.text
    assert result.text.startswith("Use the documents to answer.\n\n")
    assert result.text.endswith("Question: Who designed the Velmar bridge?")
    assert result.context_after <= int(result.context_before * 0.3)
    assert TOKENS.text(result.kept_context) <= int(result.context_before * 0.3) + 2
    assert "Document 2: Valley notes 2" in result.text  # the passage's title comes with it


def test_a_message_of_passages_whose_question_comes_later_is_not_cut_blind():
    docs = "\n\n".join(f"Document {i + 1}: Valley notes {i + 1}\n{doc(i)}" for i in range(5))
    passages = f"Here are the documents:\n\n{docs}"
    result = extractor().extract(passages, Budget(ratio=0.3))  # its "question" would be its last block
    assert result.text == passages and result.context_after == result.context_before
    asked = extractor().extract(passages + "\n\nQuestion: who grows barley?", Budget(ratio=0.3))
    assert asked.context_after < asked.context_before  # with a question of its own it is cut


@pytest.mark.parametrize("tokens", [40, 80, 150])
def test_an_absolute_budget_is_never_exceeded(tokens):
    result = extractor().extract(rag_prompt(), Budget(tokens=tokens))
    assert 0 < result.context_after <= tokens
    assert sum(TOKENS.text(c) for c in result.kept_context.split("\n\n") if c) <= tokens + 4


def test_code_blocks_and_tables_are_kept_whole_or_dropped_whole():
    text = (
        "Answer with the material below.\n\nContext:\n"
        + doc(0) + "\n\n" + CODE + "\n\n" + doc(2) + "\n\n" + TABLE + "\n\n" + doc(3)
        + "\n\nQuestion: How long is the Velmar bridge and what load does velmar_load give?"
    )  # fmt: skip
    for ratio in (0.2, 0.4, 0.6):
        out = extractor().extract(text, Budget(ratio=ratio)).text
        for block in (CODE, TABLE):
            first_line = block.splitlines()[0]
            assert (block in out) or (first_line not in out and block.splitlines()[1] not in out)
    assert TABLE in extractor().extract(text, Budget(ratio=0.5)).text


def test_system_prompt_and_other_roles_are_never_touched():
    system = "You are a careful assistant.\n\n" + "\n\n".join(doc(i) for i in range(4)) + "\n\nBe brief."
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": system},
            {"role": "assistant", "content": system},
            {"role": "user", "content": rag_prompt()},
        ],
    }
    out, report = extractor().run(body, Budget(ratio=0.3))
    assert out["messages"][0] is body["messages"][0] and out["messages"][1] is body["messages"][1]
    assert out["messages"][2]["content"].endswith("Question: Who designed the Velmar bridge?")
    assert report.tokens_after < report.tokens_before
    assert report.detail["context_after"] < report.detail["context_before"]


def test_short_contexts_are_left_alone():
    ex = Extractor(TOKENS, min_context_tokens=10_000)
    text = rag_prompt()
    assert ex.extract(text, Budget(ratio=0.3)).text == text
    assert extractor().extract(text, Budget()).text == text  # no target: nothing to do


def test_extraction_keeps_prefixes_stable():
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Answer from the documents."},
            {"role": "user", "content": rag_prompt()},
            {"role": "assistant", "content": "Ada Kristensen."},
            {"role": "user", "content": rag_prompt("When was the Velmar bridge designed?")},
        ],
    }
    ex = extractor()
    assert first_unstable(lambda b: ex.run(b, Budget(ratio=0.4))[0], body) is None


def test_redundant_passages_are_not_all_kept():
    dup = "The Velmar bridge spans the Osk river near the old mill and carries the valley road."
    docs = [dup, dup.replace("old mill", "old  mill"), dup.replace("valley road", "valley  road"), ANSWER]
    text = "Context:\n" + "\n\n".join(docs + [doc(i) for i in range(3)]) + "\n\nQuestion: Velmar bridge?"
    with_mmr = extractor(weights=Weights(redundancy=0.8)).extract(text, Budget(ratio=0.35)).text
    without = extractor(weights=Weights(redundancy=0.0)).extract(text, Budget(ratio=0.35)).text
    assert without.count("spans the Osk river") > with_mmr.count("spans the Osk river")
    assert ANSWER in with_mmr


# ---- a question or instruction that comes first (defect: implicit mode dropped it)

FAIR_QUESTION = "Which city hosted the lighthouse fair in 1894, according to the text below?"
FAIR_ANSWER = "The lighthouse fair of 1894 was held in Harrow."
FAIR_LAST = (
    "Visitors asked the same thing every spring at the quay, and the clerk always gave the same "
    "reply: would the harbour committee ever publish its budget?"
)


def fair_prompt(lead: str, last: str = FAIR_LAST) -> str:
    paras = [doc(i) for i in range(6)]
    return "\n\n".join([lead, *paras, FAIR_ANSWER, last])


def test_a_leading_question_is_kept_and_drives_relevance():
    text = fair_prompt(FAIR_QUESTION)
    result = Extractor(TOKENS, min_context_tokens=50).extract(text, Budget(ratio=0.4))
    assert result.context_after < result.context_before
    assert result.text.startswith(FAIR_QUESTION + "\n\n")
    assert FAIR_ANSWER in result.text
    assert result.text.endswith(FAIR_LAST)


def test_a_leading_question_is_used_even_when_the_last_block_asks_nothing():
    text = fair_prompt(FAIR_QUESTION, last="The quay was rebuilt in stone after the storm of 1903.")
    result = extractor().extract(text, Budget(ratio=0.4))
    assert result.context_after < result.context_before
    assert result.text.startswith(FAIR_QUESTION) and FAIR_ANSWER in result.text


def test_a_leading_instruction_without_a_colon_is_kept_verbatim():
    lead = "Answer only in French and cite the paragraph number you used."
    text = fair_prompt(lead, last="Which city hosted the lighthouse fair in 1894?")
    result = extractor().extract(text, Budget(ratio=0.4))
    assert result.context_after < result.context_before
    assert result.text.startswith(lead + "\n\n") and FAIR_ANSWER in result.text
    seg = segment(text)
    assert seg.pieces[0].strip() == lead and seg.question.strip().endswith("in 1894?")


def test_a_leading_question_before_marked_documents_is_part_of_the_query():
    docs = [doc(0), doc(1, FAIR_ANSWER), doc(2), doc(3)]
    sections = "\n\n".join(f"Document {i + 1}: Valley notes {i + 1}\n{d}" for i, d in enumerate(docs))
    text = f"{FAIR_QUESTION}\n\n{sections}"
    result = extractor().extract(text, Budget(ratio=0.4))
    assert result.context_after < result.context_before
    assert result.text.startswith(FAIR_QUESTION) and FAIR_ANSWER in result.text


def test_a_question_line_before_marked_documents_is_only_its_own_section():
    docs = [doc(0), doc(1, FAIR_ANSWER), doc(2), doc(3)]
    sections = "\n\n".join(f"Document {i + 1}: Valley notes {i + 1}\n{d}" for i, d in enumerate(docs))
    text = f"Question: Which city hosted the lighthouse fair in 1894?\n\n{sections}"
    seg = segment(text)
    assert seg.question.strip() == "Question: Which city hosted the lighthouse fair in 1894?"
    result = extractor().extract(text, Budget(ratio=0.4))
    assert result.text.startswith("Question: Which city") and FAIR_ANSWER in result.text
