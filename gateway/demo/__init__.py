"""`relais demo`: the main job on the embedded default (SQLite + sandbox peers), narrated in French."""

from gateway.demo.story import FIXTURES, FIXTURES_DATE, run

__all__ = ["FIXTURES", "FIXTURES_DATE", "run"]
