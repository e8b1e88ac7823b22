"""engine.results: stale results are dropped, never painted on the wrong image (no Qt)."""

from __future__ import annotations

import threading

from medviewer.engine.results import ResultRouter, ResultTag


def test_results_for_current_job_and_view_are_accepted():
    r = ResultRouter()
    r.set_view("st", "A")
    gen = r.start_job("st", "A", "m1")
    tag = r.tag(gen, 40)
    assert tag == ResultTag("st", "A", 40, "m1", gen)
    assert r.accept(tag)


def test_result_for_series_a_dropped_after_switching_to_b():
    r = ResultRouter()
    r.set_view("st", "A")
    gen_a = r.start_job("st", "A", "m1")
    late = r.tag(gen_a, 40)
    r.set_view("st", "B")             # the user moved on before slice 40 of A arrived
    assert not r.accept(late)
    gen_b = r.start_job("st", "B", "m1")
    assert not r.accept(late) and not r.is_current(gen_a) and r.is_current(gen_b)
    assert r.accept(r.tag(gen_b, 3))
    r.set_view("st", "A")             # back to A: A's old job was superseded, still dropped
    assert not r.accept(late)


def test_model_change_and_cancel_invalidate():
    r = ResultRouter()
    r.set_view("st", "A")
    g1 = r.start_job("st", "A", "m1")
    t1 = r.tag(g1, 0)
    g2 = r.start_job("st", "A", "m2")
    assert not r.accept(t1) and r.accept(r.tag(g2, 0))
    forged = ResultTag("st", "A", 0, "m1", g2)      # right generation, wrong model
    assert not r.accept(forged)
    r.cancel()
    assert not r.accept(r.tag(g2, 0)) and not r.is_current(g2)
    r.set_view(None, None)
    g3 = r.start_job("st", "A", "m2")
    assert not r.accept(r.tag(g3, 0))               # nothing shown: nothing painted


def test_concurrent_workers_only_newest_generation_wins():
    r = ResultRouter()
    r.set_view("st", "A")
    accepted: list[int] = []
    lock = threading.Lock()

    def worker(gen: int) -> None:
        for i in range(200):
            t = r.tag(gen, i)
            if r.accept(t):
                with lock:
                    accepted.append(t.generation)

    gens = [r.start_job("st", "A", "m") for _ in range(5)]
    threads = [threading.Thread(target=worker, args=(g,)) for g in gens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accepted and set(accepted) == {gens[-1]}
