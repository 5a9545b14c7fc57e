"""Hard checks of the semantic-cache verifier: each vetoes what it must and lets paraphrases through."""

from __future__ import annotations

import pytest

from thrifty.cache.verify import checks


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I lose 10 kg in a month?", "How do I lose 15 kg in a month?"),
        ("Is 2.5 bigger than 2?", "Is 2.50 bigger than 3?"),
        ("What happened in 1984?", "What happened in the year?"),
        ("Best phone under 20,000 rupees?", "Best phone under 30,000 rupees?"),
        ("What are two ways to learn Go?", "What are three ways to learn Go?"),
    ],
)
def test_numbers_veto_differing_numbers(a: str, b: str) -> None:
    assert checks.number_mismatch(a, b) is not None
    assert "numbers" in [v.check for v in checks.vetoes(a, b)]


def test_numbers_pass_same_numbers_in_other_words() -> None:
    assert checks.number_mismatch("How do I lose 10 kg?", "Ways to lose 10kg quickly") is None
    assert checks.number_mismatch("Best laptop under 50,000?", "Which laptop below 50000 is best?") is None
    assert checks.number_mismatch("Top two books?", "The 2 best books?") is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Why do cats purr?", "Why don't cats purr?"),
        ("Can I eat eggs while pregnant?", "Can I not eat eggs while pregnant?"),
        ("Is it safe to fly?", "Is it never safe to fly?"),
    ],
)
def test_negation_vetoes_one_sided_negation(a: str, b: str) -> None:
    assert checks.negation_mismatch(a, b) == "one question is negated"


def test_negation_passes_both_or_double_negated() -> None:
    assert checks.negation_mismatch("Why can't I sleep?", "Why am I not able to sleep?") is None
    assert checks.negation_mismatch("Is it not true that nobody came?", "Did people come?") is None
    assert checks.negated("It is not untrue that no one came") is False


@pytest.mark.parametrize(
    ("a", "b", "kinds"),
    [
        ("When was Einstein born?", "Where was Einstein born?", "when / where"),
        ("Who invented the telephone?", "Why was the telephone invented?", "who / why"),
        ("How old is the Earth?", "How was the Earth formed?", "how-old / how"),
        ("How much does a Tesla cost?", "What is a Tesla?", "how-much / what"),
    ],
)
def test_question_kind_vetoes_different_questions(a: str, b: str, kinds: str) -> None:
    assert checks.question_kind_mismatch(a, b) == f"question kinds differ: {kinds}"


def test_question_kind_passes_interchangeable_forms() -> None:
    assert (
        checks.question_kind_mismatch("What is the best way to learn Python?", "How do I learn Python?")
        is None
    )
    assert checks.question_kind_mismatch("Why is the sky blue?", "why is the sky blue") is None
    assert checks.question_kind("Can I use Python for web apps?") == "yesno"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "What is the capital of Germany?"),
        ("Is Python better than Java?", "Is Python better than Rust?"),
        ("How do I install NumPy on Windows?", "How do I install NumPy on Ubuntu?"),
    ],
)
def test_entities_veto_differing_names(a: str, b: str) -> None:
    reason = checks.entity_mismatch(a, b)
    assert reason is not None and reason.startswith("entities differ")


def test_entities_pass_same_names_in_any_case() -> None:
    assert checks.entity_mismatch("What is the capital of France?", "france capital city?") is None
    assert checks.entity_mismatch("How do I learn Python?", "What is the best way to learn Python?") is None
    # a capitalised first word is not an entity
    assert checks.entities("Learning is fun. Teaching too") == set()
    assert checks.entities("Is iOS better than Android?") == {"ios", "android"}


def test_vetoes_report_every_failing_check_and_respect_enabled() -> None:
    a, b = "When did Apple sell 10 phones?", "Why didn't Samsung sell 12 phones?"
    found = {v.check for v in checks.vetoes(a, b)}
    assert found == {"numbers", "negation", "question_kind", "entities"}
    assert [v.check for v in checks.vetoes(a, b, enabled=("numbers",))] == ["numbers"]
    assert checks.vetoes("How do I learn Python?", "How can I learn Python?") == []


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("How do I overcome my inferiority complex ?", "how do I overcome my inferiority complex", True),
        ("What does 心中 mean?", "what does 心中 mean", True),
        # ASCII words alone are equal here; the questions are not
        ("What does 嘚瑟 mean?", "What does 心中 mean?", False),
        ("Что такое любовь?", "Что такое дружба?", False),
        ("?", "!", False),  # no words at all is not "the same wording"
        ("How do I learn Python?", "How do I learn Python fast?", False),
    ],
)
def test_same_wording_compares_words_of_any_script(a: str, b: str, same: bool) -> None:
    assert checks.same_wording(a, b) is same


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("what is 3+3?", "what is 3*3?"),
        ("what is 3+3?", "what is 3-3?"),
        ("Explain pointers in C++", "Explain pointers in C#"),
        ("is 5 > 3?", "is 5 < 3?"),
        ("what is 2^10", "what is 2*10"),
        ("what is -5 squared?", "what is 5 squared?"),
        ("what is 5 - 3", "what is 5 3"),
        ("Is 50% a lot?", "Is 50 a lot?"),
        ("Is $100 a lot?", "Is 100 a lot?"),
        ("What is (3+3)*2?", "What is 3+3*2?"),
        ("What does char *p mean?", "What does char p mean?"),
        ("What does 🍆 mean?", "What does 🍑 mean?"),
        ("What is .5 squared?", "What is 5 squared?"),
    ],
)
def test_symbols_that_are_part_of_a_term_make_different_wording_and_veto(a: str, b: str) -> None:
    assert not checks.same_wording(a, b)
    reason = checks.symbol_mismatch(a, b)
    assert reason is not None and reason.startswith("symbols differ")
    assert [v.check for v in checks.hard_vetoes(a, b)] == ["symbols"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is COVID-19?", "what is covid 19"),  # a hyphen joining a word, not a minus
        ("Is e-mail dead?", "is e mail dead"),
        ('What does "serendipity" mean?', "What does serendipity mean"),
        ("What is AI (artificial intelligence)?", "What is AI, artificial intelligence?"),
        ("What is **RAG**?", "What is RAG?"),  # markdown emphasis
        ("How do I learn C++?", "how do I learn c++"),
        ("What is demonetization in America\\?", "What is demonetization in America?"),  # an escape
        ("What is 3 * 3?", "what is 3*3"),
        ("What is 3.5 squared?", "what is 3.5 squared"),
        ("What is café?", "What is cafe\u0301?"),  # the same text, composed or not
    ],
)
def test_same_wording_ignores_case_spacing_and_punctuation_that_keeps_the_meaning(a: str, b: str) -> None:
    assert checks.same_wording(a, b)
    assert checks.symbol_mismatch(a, b) is None


def test_the_symbol_check_leaves_pairs_with_other_words_to_the_model() -> None:
    # its words differ too: the learned stages (and the numbers / entities checks) decide
    assert checks.symbol_mismatch("What is 3+3?", "What's 3*3?") is None
    assert checks.symbol_mismatch("How do I learn C++?", "How do I learn C# fast?") is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What year did ww2 end?", "What year did ww1 end?"),
        ("How do I install python2 on Ubuntu?", "How do I install python3 on Ubuntu?"),
        ("How to convert mp3 to wav?", "How to convert mp4 to wav?"),
        ("Is gpt4 better?", "Is gpt3 better?"),
    ],
)
def test_numbers_inside_words_count(a: str, b: str) -> None:
    assert checks.number_mismatch(a, b) is not None
    assert checks.number_mismatch(a, a.upper()) is None
