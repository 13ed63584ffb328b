"""Sample Python nodes for ``examples/python_module.yaml``.

Plain classes in the shape of the SDK's ``Node``: nothing here imports remotemedia.
"""

import logging

log = logging.getLogger("examples.words")


class Words:
    """Splits each line of text into lower-case words (a generator: one output per word)."""

    def __init__(self, min_length=1):
        self.min_length = min_length

    def process(self, line):
        for word in line.split():
            word = word.strip(".,;:!?\"'()").lower()
            if len(word) >= self.min_length:
                yield word


class Count:
    """Counts the words it sees; emits the running count of each, and the totals at the end."""

    def __init__(self):
        self.counts = {}

    def initialize(self):
        log.info("counting words")

    def process(self, word):
        n = self.counts.get(word, 0) + 1
        self.counts[word] = n
        return [word, n]

    def flush(self):
        return dict(sorted(self.counts.items()))
