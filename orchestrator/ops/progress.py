"""Progress for long management commands: a tqdm bar on a terminal, plain log lines otherwise
(cron, docker logs, CI), where a redrawn bar would be noise."""

from tqdm import tqdm


class _LineProgress:
    def __init__(self, *, total, description, stream):
        self.total = total
        self.description = description
        self.stream = stream
        self.done = 0

    def update(self, count):
        before, self.done = self.done, self.done + count
        if self.total:
            # At most one line per tenth of the work: a per-record line would drown the log.
            if self.done < self.total and before * 10 // self.total == self.done * 10 // self.total:
                return
            self.stream.write(f"{self.description}: {self.done}/{self.total}\n")
        else:
            self.stream.write(f"{self.description}: {self.done}\n")

    def close(self):
        pass


def progress(*, total, description, stream):
    """An object with update(n) and close(), drawing on `stream` (a command's stdout or stderr)."""
    if stream.isatty():
        # tqdm redraws with "\r"; Django's OutputWrapper would end every redraw with a newline.
        raw = getattr(stream, "_out", stream)
        return tqdm(total=total, desc=description, file=raw, unit="rec", dynamic_ncols=True)
    return _LineProgress(total=total, description=description, stream=stream)
