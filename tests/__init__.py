"""The test suite: fast by default, heavier tests marked slow; shared helpers in fixtures/."""
