"""Answer normalisation and the metrics of VQA-style benchmarks."""

from __future__ import annotations

import difflib

from vpagent.answers import normalize


def exact_match(prediction: str | None, accepted: list[str]) -> float:
    """1.0 if the normalised prediction equals any accepted answer."""
    if prediction is None:
        return 0.0
    return float(normalize(prediction) in {normalize(a) for a in accepted})


def vqa_soft_accuracy(prediction: str | None, human_answers: list[str]) -> float:
    """VQA accuracy: min(#humans who gave the answer / 3, 1), averaged over 10-choose-9 subsets."""
    if prediction is None or not human_answers:
        return 0.0
    guess = normalize(prediction)
    answers = [normalize(a) for a in human_answers]
    if len(answers) < 10:
        return min(answers.count(guess) / 3, 1.0) if len(answers) >= 3 else float(guess in answers)
    scores = []
    for left_out in range(len(answers)):
        others = answers[:left_out] + answers[left_out + 1 :]
        scores.append(min(others.count(guess) / 3, 1.0))
    return sum(scores) / len(scores)


def map_to_choice(prediction: str | None, choices: list[str]) -> int | None:
    """The index of the choice the prediction names: exact, then containment, then closest."""
    if prediction is None or not choices:
        return None
    guess = normalize(prediction)
    normal = [normalize(c) for c in choices]
    if guess in normal:
        return normal.index(guess)
    contained = [i for i, choice in enumerate(normal) if choice and choice in guess.split()]
    if len(contained) == 1:
        return contained[0]
    ratios = [difflib.SequenceMatcher(None, guess, choice).ratio() for choice in normal]
    return max(range(len(choices)), key=ratios.__getitem__)
