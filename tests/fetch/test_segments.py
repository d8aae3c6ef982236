"""Who reads which bytes: pure bookkeeping (sidecar.fetch.segments), no I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.fetch.segments import Segments

KIB = 1024
RATES = {0: 3e6, 1: 1e6}


def rate(source: int) -> float:
    return RATES[source]


def latency(source: int) -> float:
    return 0.01


def covered(segments: Segments) -> None:
    """Segments tile [0, size) in order, without gap or overlap."""
    position = 0
    for segment in segments.segments:
        assert segment.start == position and segment.start <= segment.pos <= segment.end
        position = segment.end
    assert position == segments.size


def test_a_thief_takes_the_tail_in_proportion_to_the_rates() -> None:
    segments = Segments.of(8 * 1024 * KIB, min_split=256 * KIB)
    owner = segments.take(0, rate, latency)
    assert owner is not None and (owner.cursor, owner.segment.end) == (0, 8 * 1024 * KIB)
    thief = segments.take(1, rate, latency)
    assert thief is not None
    # source 1 is a third as fast: it gets a quarter of what is left, the tail
    assert thief.segment.end - thief.cursor == 2 * 1024 * KIB
    assert owner.segment.end == thief.cursor
    covered(segments)
    assert segments.steals == 1


def test_the_remainder_of_a_released_job_continues_where_it_stopped() -> None:
    segments = Segments.of(1024 * KIB)
    job = segments.take(0, rate, latency)
    assert job is not None
    segments.wrote(job, 300 * KIB)
    segments.release(job)
    again = segments.take(1, rate, latency)
    assert again is not None and again.cursor == 300 * KIB
    assert segments.done_ranges() == [(0, 300 * KIB)]


def test_end_game_duplicates_a_slow_owners_last_range_and_the_first_copy_wins() -> None:
    segments = Segments.of(600 * KIB, min_split=512 * KIB)
    slow = segments.take(1, rate, latency)  # too small to split: 600 KiB < 2 x 512 KiB
    assert slow is not None
    fast = segments.take(0, rate, latency)
    assert fast is not None and fast.duplicate and fast.segment is slow.segment
    segments.wrote(slow, 100 * KIB)
    segments.wrote(fast, 600 * KIB - fast.cursor)
    assert segments.finish(fast) is slow  # the slow copy is cancelled
    assert segments.wanted(slow) == 0 and segments.complete


def test_a_whole_object_answer_reads_on_into_unclaimed_ranges_only() -> None:
    segments = Segments.of(1024 * KIB, done=[(512 * KIB, 600 * KIB)])
    job = segments.take(0, rate, latency)
    assert job is not None and job.segment.end == 512 * KIB
    segments.wrote(job, 512 * KIB)
    assert not segments.extend(job)  # the next range is already written


def test_resumed_ranges_are_not_read_again() -> None:
    segments = Segments.of(1000, done=[(0, 400), (700, 1000)])
    assert segments.written == 700
    job = segments.take(0, rate, latency)
    assert job is not None and (job.cursor, job.segment.end) == (400, 700)
    assert segments.take(0, rate, latency) is None  # a source never steals from itself


@given(st.lists(st.tuples(st.sampled_from([0, 1]), st.integers(0, 300 * KIB)), max_size=40))
def test_whatever_the_sources_do_the_segments_tile_the_image(
    steps: list[tuple[int, int]],
) -> None:
    segments = Segments.of(2 * 1024 * KIB, min_split=128 * KIB)
    for source, count in steps:
        job = segments.take(source, rate, latency)
        if job is None:
            continue
        segments.wrote(job, min(count, segments.wanted(job)))
        if segments.wanted(job) == 0:
            segments.finish(job)
        elif count % 3 == 0:
            segments.release(job)
        covered(segments)
    assert segments.written == sum(b - a for a, b in segments.done_ranges())
