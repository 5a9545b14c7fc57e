"""The rules task classifier on a hand-labelled set (written here, labelled by hand), and its signals.

The accuracy printed by `test_accuracy_on_hand_labelled_set` (run with -s) is the figure reported in
docs/routing.md.
"""

from __future__ import annotations

from thrifty.routing.classifier import TaskClassifier
from thrifty.routing.rules import RulesRouter
from thrifty.routing.signals import Signals

LABELLED: list[tuple[str, str]] = [
    ("Write a Python function that returns the n-th Fibonacci number.", "code"),
    ("Why does this raise TypeError: 'NoneType' object is not subscriptable?\n```\nx = f()[0]\n```", "code"),
    ("Refactor this JavaScript: const a = list.map(x => x * 2);", "code"),
    ("How do I write a SQL query that joins orders and customers?", "code"),
    ("Fix the bug in my Rust code, the borrow checker complains.", "code"),
    ("def add(a, b):\n    return a - b\n\nWhat is wrong here?", "code"),
    ("My bash script fails with 'permission denied', how do I debug it?", "code"),
    ("Explain the difference between a process and a thread in Java.", "code"),
    ("A store sells pencils at $2 each. How many pencils can Maria buy with $17?", "math"),
    ("Solve the equation 3x + 7 = 22.", "math"),
    ("What is 15% of 240?", "math"),
    ("John has 5 apples and buys 3 more each day for 4 days. How many apples does he have?", "math"),
    ("Calculate the average of 12, 15, 20 and 33.", "math"),
    ("If a train travels 60 miles per hour for 2.5 hours, how far does it go?", "math"),
    ("Compute the derivative of x^2 * sin(x).", "math"),
    ("Summarize the following article in three sentences: The city council met on Tuesday...", "summarize"),
    ("TL;DR of this thread please: ...", "summarize"),
    ("Give me the key points of this meeting transcript.", "summarize"),
    ("Can you condense this paragraph into one line?", "summarize"),
    ("Translate 'good morning, how are you?' into Spanish.", "translate"),
    ("Translate this to German: the invoice is attached.", "translate"),
    ("How do you say 'thank you very much' in Japanese? Please translate.", "translate"),
    ("Extract all email addresses from this text: contact bob@x.com or amy@y.org", "extract"),
    ("Parse this invoice and return the fields vendor, date and total as JSON.", "extract"),
    ("List all the people named in the following paragraph.", "extract"),
    ("Pull out the dates mentioned in this email.", "extract"),
    ("Classify the sentiment of this review: 'The food was cold and the staff rude.'", "classify"),
    ("Is this email spam or not? 'You won a free cruise, click here'", "classify"),
    ("Categorize this support ticket as billing, technical or other: 'I was charged twice'", "classify"),
    ("Label each tweet as positive, negative or neutral.", "classify"),
    ("Write a poem about the sea at night.", "creative"),
    ("Write me a short story about a robot who learns to paint.", "creative"),
    ("Brainstorm ten names for a coffee shop.", "creative"),
    ("Compose a haiku about autumn leaves.", "creative"),
    ("Hi! How are you today?", "chat"),
    ("Thanks, that was helpful.", "chat"),
    ("What's the capital of France?", "chat"),
    ("Good morning!", "chat"),
    ("Who wrote Pride and Prejudice?", "chat"),
    ("Why do startups fail? Analyze the main causes and compare them.", "reasoning"),
    ("Explain the trade-offs between microservices and a monolith for a small team.", "reasoning"),
    ("What are the pros and cons of nuclear energy? Justify your view.", "reasoning"),
    ("Critique this business plan and evaluate its risks.", "reasoning"),
]


def test_accuracy_on_hand_labelled_set():
    classifier = TaskClassifier()
    wrong = [
        (text, label, classifier.classify(Signals.of_prompt(text)).task)
        for text, label in LABELLED
        if classifier.classify(Signals.of_prompt(text)).task != label
    ]
    accuracy = 1 - len(wrong) / len(LABELLED)
    print(
        f"\nrules classifier accuracy on {len(LABELLED)} hand-labelled prompts: {accuracy:.3f};"
        f" wrong: {wrong}"
    )
    assert accuracy >= 0.85, wrong


def test_shape_signals():
    classifier = TaskClassifier()
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "The order: 2 chairs, one table."}],
        "response_format": {"type": "json_object"},
    }
    assert classifier.classify(Signals.of_body(body)).task == "extract"
    coder = {
        "messages": [
            {"role": "system", "content": "You are a senior developer."},
            {"role": "user", "content": "Make it faster and use less memory please"},
        ]
    }
    assert classifier.classify(Signals.of_body(coder)).task == "code"
    s = Signals.of_body(
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "translate 'cat' into French"},
            ]
        }
    )
    assert s.depth == 2 and s.text.startswith("translate")
    assert classifier.classify(s).task == "translate"


def test_rules_router_table_default_and_hint():
    router = RulesRouter({"code": "big", "default": "small"})
    assert router.choose(Signals.of_prompt("Write a Python function to sort a list")) == ("code", "big")
    assert router.choose(Signals.of_prompt("hello")) == ("chat", "small")
    assert router.choose(Signals.of_prompt("hello"), task_hint="code") == ("code", "big")
    assert router.candidates == ["big", "small"]
