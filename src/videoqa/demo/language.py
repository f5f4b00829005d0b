"""The questions, answers and captions of the shapes world, and the words they use.

Every question has one right answer that follows from a clip's ``ClipTruth``; the demo model's
vocabulary is exactly the words used here (plus BERT's special tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from videoqa.demo.world import COLORS, DIRECTIONS, SHAPES, ClipTruth

COUNT_WORDS = ("zero", "one", "two", "three")
QUESTION_KINDS = ("color", "shape", "direction", "count", "presence")
PRESENCE_ANSWERS = ("yes", "no")


@dataclass(frozen=True)
class Question:
    kind: str  # one of QUESTION_KINDS
    text: str
    answer: str


def questions_for(truth: ClipTruth) -> list[Question]:
    """Every question that has one right answer for this clip, with that answer."""
    questions: list[Question] = []
    for actor in truth.actors:
        questions.append(Question("color", f"what color is the {actor.shape}?", actor.color))
        questions.append(Question("shape", f"what shape is the {actor.color} one?", actor.shape))
        if truth.direction is not None:
            questions.append(
                Question("direction", f"which way does the {actor.shape} move?", truth.direction)
            )
    if truth.count == 1:
        questions.append(Question("shape", "what shape is it?", truth.actors[0].shape))
    if truth.direction is not None and truth.count:
        questions.append(Question("direction", "which way does it move?", truth.direction))
    questions.append(Question("count", "how many shapes are there?", COUNT_WORDS[truth.count]))
    questions += _balanced_presence(truth)
    return questions


def presence_questions(truth: ClipTruth) -> list[Question]:
    """Every "is there a {color} {shape}?" and "is there a {shape}?" with its yes/no answer."""
    present = {(actor.color, actor.shape) for actor in truth.actors}
    shapes = {actor.shape for actor in truth.actors}
    questions = [
        Question("presence", f"is there a {color} {shape}?", _yes_no((color, shape) in present))
        for shape in SHAPES
        for color in COLORS
    ]
    questions += [
        Question("presence", f"is there a {shape}?", _yes_no(shape in shapes)) for shape in SHAPES
    ]
    return questions


def _balanced_presence(truth: ClipTruth) -> list[Question]:
    """As many "no" as "yes" presence questions, the "no" ones near misses: per shape on screen,
    its colour and shape (yes), its shape alone (yes), the next colour on that shape (no) and
    the next shape in that colour (no). (Shapes and colours differ within a clip.)"""
    colors, shapes = list(COLORS), list(SHAPES)
    questions = []
    for actor in truth.actors:
        other_color = colors[(colors.index(actor.color) + 1) % len(colors)]
        other_shape = shapes[(shapes.index(actor.shape) + 1) % len(shapes)]
        questions += [
            Question("presence", f"is there a {actor.color} {actor.shape}?", "yes"),
            Question("presence", f"is there a {actor.shape}?", "yes"),
            Question("presence", f"is there a {other_color} {actor.shape}?", "no"),
            Question("presence", f"is there a {actor.color} {other_shape}?", "no"),
        ]
    return questions


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def caption_of(truth: ClipTruth) -> str:
    """``a red circle moves left``; two shapes in lane order; three are only counted."""
    verb_one, verb_many = ("moves", "move") if truth.direction else ("stays", "stay")
    where = truth.direction or "still"
    if truth.count == 0:
        return "there are no shapes"
    if truth.count == 1:
        actor = truth.actors[0]
        return f"a {actor.color} {actor.shape} {verb_one} {where}"
    if truth.count == 2:
        first, second = truth.actors
        return (
            f"a {first.color} {first.shape} and a {second.color} {second.shape} {verb_many} {where}"
        )
    return f"{COUNT_WORDS[truth.count]} shapes {verb_many} {where}"


def _vocabulary() -> tuple[str, ...]:
    words = ["what", "color", "is", "the", "shape", "it", "one", "which", "way", "does", "move"]
    words += ["moves", "how", "many", "shapes", "are", "there", "a", "and", "stays", "stay"]
    words += ["still", "no", "?"]
    words += [*SHAPES, *COLORS, *DIRECTIONS, *COUNT_WORDS]
    # Words added later go last, so the ids of the words above stay what the checkpoint learnt.
    words += ["yes"]
    return tuple(dict.fromkeys(words))


#: The words of every question, answer and caption (the demo tokenizer's vocabulary).
VOCABULARY = _vocabulary()
