"""The project's states and the one table of transitions between them (L1-L10).

Like a sans-I/O protocol's state machine: every change of a project's state goes through
:func:`advance`, which knows nothing but this table, so a transition the rules do not allow
cannot happen by accident anywhere (a disposed project made active again, a retained one
deleted while a hold stands).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.errors import RuleViolation
from agent.lifecycle.model import State


class Event(StrEnum):
    #: The end date passed, or the project was ended early (L1).
    END = "end"
    #: A REK approval moved the end date later before disposal began (L1).
    EXTEND = "extend"
    #: The grace period is over and REK allowed (L3) or a clinical trial requires (L4) keeping.
    RETAIN = "retain"
    #: Disposal is due: the grace period, or the approved retention, is over (L2, L3).
    DISPOSE = "dispose"
    ANONYMISED = "anonymised"
    DELETED = "deleted"
    #: Transferred to an approved external archive and deleted locally (L9).
    ARCHIVED = "archived"
    #: Every registered copy is confirmed disposed of (L2).
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Transition:
    target: State
    rule: str
    #: Whether an open legal hold stops it (L5): everything after active except ending, which
    #: only takes access away and disposes of nothing.
    held_back: bool = True


_DISPOSED = (State.ANONYMISED, State.DELETED, State.ARCHIVED)

#: (state, event) -> transition. What is not here is not allowed.
TRANSITIONS: dict[tuple[State, Event], Transition] = {
    (State.ACTIVE, Event.END): Transition(State.ENDED, "L1", held_back=False),
    (State.ENDED, Event.EXTEND): Transition(State.ACTIVE, "L1"),
    (State.RETAINED, Event.EXTEND): Transition(State.ACTIVE, "L1"),
    (State.ENDED, Event.RETAIN): Transition(State.RETAINED, "L3"),
    (State.ENDED, Event.DISPOSE): Transition(State.DISPOSING, "L2"),
    (State.RETAINED, Event.DISPOSE): Transition(State.DISPOSING, "L3"),
    # Recording a destruction already done: a hold placed after the last file went cannot
    # undo it, and must not leave the project disposing for as long as it stands.
    (State.DISPOSING, Event.ANONYMISED): Transition(State.ANONYMISED, "L6", held_back=False),
    (State.DISPOSING, Event.DELETED): Transition(State.DELETED, "L2", held_back=False),
    (State.DISPOSING, Event.ARCHIVED): Transition(State.ARCHIVED, "L9", held_back=False),
    **{(state, Event.CLOSE): Transition(State.CLOSED, "L2") for state in _DISPOSED},
}


def advance(state: State, event: Event, *, held: bool) -> Transition:
    """The transition ``event`` makes from ``state``, or a refusal naming the rule."""
    transition = TRANSITIONS.get((state, event))
    if transition is None:
        if event is Event.EXTEND and state in (*_DISPOSED, State.CLOSED):
            raise RuleViolation(
                f"a project that was {state.value} cannot be reopened",
                rule="L10",
                hint="reuse for a new purpose needs a new project with its own REK approval",
            )
        raise RuleViolation(f"a project that is {state.value} cannot {event.value}",
                            rule="L1", hint="see 'vokter lifecycle plan PROJECT'")
    if held and transition.held_back:
        raise RuleViolation(f"a legal hold stands: the project stays {state.value}", rule="L5",
                            hint="the hold must be released first ('vokter hold list')")
    return transition


def after_active(state: State) -> bool:
    return state is not State.ACTIVE


def disposed(state: State) -> bool:
    return state in _DISPOSED or state is State.CLOSED
