"""Two groundings the scorer refused on the PostgreSQL fresh-d set (2026-11-28), where a reader finds
the fact in a cited chunk of the right page:

- The chunk states the value alone, because its page names the thing once, in the chunk before: "The
  default is spread." under BASE_BACKUP's CHECKPOINT option, "The default value is
  error=01;31:warning=01;35:..." after PG_COLORS's paragraph. A fact stated in a sentence that names
  nothing else is the page's thing's when another retrieved chunk of that page names it.
- A file name suffix is written glued to its base name: ".syn" in "my_synonyms.syn".
"""

from __future__ import annotations

from pathlib import Path

from agentfleet_eval.claims import words
from agentfleet_eval.scoring import Outcome, failure_cause, judge_answer, score
from agentfleet_eval.taskset import load_taskset

ROOT = Path(__file__).resolve().parents[3]
TASKS = {t.id: t for t in load_taskset(ROOT / "e2e" / "eval" / "postgres-manual-fresh-d-tasks.yaml").tasks}
PAGE = "protocol-replication.html"
# The two chunks of protocol-replication.html the fleet retrieved (journal of the 1.5B's run).
HEADING = (
    "BASE_BACKUP [ ( option [, ...] ) ] Instructs the server to start streaming a base backup. The following "
    "options are accepted:  LABEL 'label' Sets the label of the backup."
)
OPTION = (
    "The default is false.  CHECKPOINT { 'fast' | 'spread' } Sets the type of checkpoint to be performed at the "
    "beginning of the base backup. The default is spread."
)
ANSWER = "It performs a spread checkpoint at the start of the backup [source: protocol-replication.html]."


def grounded(task_id: str, answer: str, *passages: tuple[str, str]) -> bool | None:
    o = Outcome(
        status="done",
        answer=answer,
        citations=tuple(dict.fromkeys(src for src, _ in passages)),
        retrieved=tuple({"rank": i, "source": src, "text": text} for i, (src, text) in enumerate(passages, 1)),
    )
    s = score(TASKS[task_id], o)
    assert s.success, s.why
    return s.grounded


def test_a_value_stated_alone_is_the_pages_thing_when_another_chunk_of_the_page_names_it() -> None:
    assert grounded("pgfd-default-base-backup-checkpoint", ANSWER, (PAGE, OPTION), (PAGE, HEADING))


def test_without_a_chunk_naming_the_thing_the_value_is_not_grounded() -> None:
    assert not grounded("pgfd-default-base-backup-checkpoint", ANSWER, (PAGE, OPTION))
    # nor when the naming chunk is another page's
    assert not grounded("pgfd-default-base-backup-checkpoint", ANSWER, (PAGE, OPTION), ("other.html", HEADING))


def test_a_value_said_of_another_named_thing_is_not_grounded_by_its_page() -> None:
    # The sentence holding the value names another setting before it: the value is that setting's.
    other = "The default is false. For wal_sender_checkpoint the type is spread."
    assert not grounded("pgfd-default-base-backup-checkpoint", ANSWER, (PAGE, other), (PAGE, HEADING))


def test_a_file_name_suffix_is_found_at_the_end_of_a_file_name() -> None:
    chunk = "The file's full name will be $SHAREDIR/tsearch_data/my_synonyms.syn (where $SHAREDIR is ...)."
    source = "textsearch-dictionaries.html"
    answer = 'The suffix is ".syn" [source: textsearch-dictionaries.html].'
    assert grounded("pgfd-default-synonym-file-suffix", answer, (source, chunk))
    assert words(".syn").search("my_synonyms.syn") and not words(".syn").search("my.synonyms")
    # only a suffix is read glued: a line end is not in "\r\n", nor a mode "w+" in "w+b"
    assert not words("\\n").search("\\r\\n") and not words("w+").search("w+b")


def test_a_decline_beside_a_chunk_the_page_rule_reads_is_declined_not_passage_missed() -> None:
    # failure_cause reads the passages as the grounding check does: the same fact, the same page rule.
    o = Outcome(
        status="done",
        answer="The documentation does not say which checkpoint it performs.",
        retrieved=({"rank": 1, "source": PAGE, "text": OPTION}, {"rank": 2, "source": PAGE, "text": HEADING}),
    )
    assert failure_cause(score(TASKS["pgfd-default-base-backup-checkpoint"], o)) == "declined"
    alone = Outcome(status="done", answer=o.answer, retrieved=o.retrieved[:1])
    assert failure_cause(score(TASKS["pgfd-default-base-backup-checkpoint"], alone)) == "passageMissed"


DROPUSER = "pgfd-hop-dropuser-command-dropdb-force"


def test_the_kind_of_thing_the_question_asks_for_is_not_what_the_value_is_said_of() -> None:
    # "Which SQL command is the dropuser program a wrapper around": an answer repeating "the SQL
    # command DROP ROLE" says what kind of thing DROP ROLE is (both passes' answers, scored wrong).
    right = (
        "The dropuser program is a wrapper around the SQL command DROP ROLE. The dropdb option that attempts "
        "to terminate all existing connections is the FORCE option."
    )
    assert judge_answer(TASKS[DROPUSER], right).ok
    # What the value is said of still counts: DROP ROLE said of dropdb is not dropuser's.
    swapped = (
        "The dropdb program is a wrapper around the SQL command DROP ROLE, and the dropuser option that "
        "terminates connections is --force."
    )
    assert not judge_answer(TASKS[DROPUSER], swapped).ok


def test_a_one_letter_option_is_read_with_its_hyphen() -> None:
    # Read loosely, "-f" was the letter f, which any text may hold (a fresh-e writer's finding).
    stated = "The dropuser program is a wrapper around DROP ROLE; the dropdb option is -f."
    assert judge_answer(TASKS[DROPUSER], stated).ok
    letter = "The dropuser program is a wrapper around DROP ROLE; for dropdb see appendix f."
    assert judge_answer(TASKS[DROPUSER], letter).why == "missing '--force | -f'"
