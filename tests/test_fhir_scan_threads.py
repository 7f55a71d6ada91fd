"""The compiled structure scan is built on first use by whichever thread meets a type first; the
API validates submissions in several threads at once. Two threads meeting the same uncompiled type
must both get the right answer (a race there once answered `KeyError: 'Extension'`, turned into a
400 by POST /exchanges)."""

from __future__ import annotations

import sys
import threading
from importlib import resources

import orjson
import pytest

from gateway.conformance.fhir import structure as S
from tests.test_fhir_structure_support import broken_copies, fixture_bundles


def _data() -> dict:
    return orjson.loads(resources.files("mappings.fhir.profiles").joinpath(S.DATA_FILE).read_bytes())


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return list(fixture_bundles().values())[:6] + list(broken_copies().values())[:2]


def test_concurrent_first_use_gives_the_single_threaded_answers(corpus):
    data = _data()
    expected = [S.Structure(data).scan(doc) for doc in corpus]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the interpreter over as often as possible: races show
    try:
        for _ in range(6):  # each round a fresh Structure: nothing compiled yet
            structure = S.Structure(data)
            start = threading.Barrier(len(corpus) * 2)
            answers: dict[int, object] = {}

            def scan(k: int) -> None:
                start.wait()
                try:
                    answers[k] = structure.scan(corpus[k % len(corpus)])
                except Exception as error:  # noqa: BLE001 (the failure the test looks for)
                    answers[k] = error

            threads = [threading.Thread(target=scan, args=(k,)) for k in range(len(corpus) * 2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert [answers[k] for k in range(len(threads))] == expected * 2
    finally:
        sys.setswitchinterval(interval)
