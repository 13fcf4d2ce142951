"""A rule evaluated where it can be stopped: in a child process, within a deadline and a memory cap.

The CEL engine holds the interpreter while it evaluates and cannot be interrupted. Most rules take
time linear in the values they read, but a comprehension macro (`all`, `exists`, `existsOne`, `map`,
`filter`) multiplies the work by the length of the list it walks at each level, and a list is what
an agent sends: `a.exists(x, a.exists(y, x + y == 0))` over 1,000 numbers takes 0.4 s here, over the
100,000 a request may carry over an hour. Such a rule (APART, as policy.services._placement reads
its text) is evaluated here instead, so that a slow or swelling one is killed and denies (the policy
fails closed), rather than holding a worker until gunicorn's timeout.

Each thread keeps one child, started when a check first needs it and reused by the next checks;
one that overran is killed, and the next check starts another. A child is a fresh interpreter
running this file as its program: this module imports nothing of the project (no Django), only the
engine, orjson and the standard library, so that the child starts in about a third of a second.
"""

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from itertools import count
from typing import Any

import orjson

_HEADER = struct.Struct(">I")
# A child's start (an interpreter, the engine's import: about 0.3 s) and a check's variables sent to
# it (linear in the request, which MAX_REQUEST_BODY_BYTES bounds: 0.4 to 0.9 s for a MiB of tiny
# values, measured) are not the rules' time; each may take this long, then the check's deadline
# begins. Well under gunicorn's 30 s timeout, so that a setup that overruns is a denial on record,
# not a worker killed mid-request.
SETUP_SECONDS = 10.0
# Where a rule is evaluated (policy.services._placement decides, from its text).
APART, APART_IF_LARGE = "apart", "apart if large"
# Variables past this many bytes of JSON send every rule here. A rule of linear calls is linear in them,
# but its constant can be large: this engine copies a map to read a field of it (a reference to
# `task.payload.path` beside a MB of other keys costs up to 60 ms, and a deny-list names it forty
# times), and a literal pattern such as `\w{1,200}z` costs seconds per MB (both measured by an
# outside review). Below this a fair rule takes about 0.1 s at worst (docs/policy.md).
LARGE_BYTES = 16 * 1024


def is_large(variables: dict[str, Any]) -> bool:
    """Whether `variables` are past LARGE_BYTES written as JSON (or cannot be written so: then they
    are taken for large)."""
    try:
        return len(orjson.dumps(variables, option=orjson.OPT_NON_STR_KEYS)) > LARGE_BYTES
    except TypeError:
        return True


class EvaluationStopped(Exception):
    """The child ran past the check's deadline or died (its memory cap, a crash): it was killed and
    answered nothing."""


class RuleError(Exception):
    """The engine refused the rule on these variables (a missing key, a type it cannot compare ...),
    as it raises in-process; the message is the engine's."""


class _Child:
    """One evaluator process and the pipes to it. kill() ends it (and is called when it is dropped)."""

    def __init__(self, *, memory_bytes: int) -> None:
        self.owner = os.getpid()
        self.memory_bytes = memory_bytes
        self.process = subprocess.Popen(
            # -I: nothing from the environment or the working directory is imported before the engine.
            [sys.executable, "-I", __file__, str(memory_bytes), str(self.owner)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        # Ended with its thread too: dropped without this, a running child is kept by subprocess (its
        # Popen in subprocess._active, with its stdin open) and never reads the end of its input.
        self.kill = weakref.finalize(self, _end, self.process, self.owner)
        # The Evaluation whose variables the child holds.
        self.bound_to: int | None = None
        try:
            self.ask(("ping", None), deadline=time.monotonic() + SETUP_SECONDS, stage="the evaluator's start")
        except EvaluationStopped:
            self.kill()
            raise

    def ask(self, request: tuple[Any, ...], *, deadline: float, stage: str = "the evaluation") -> tuple[str, Any]:
        try:
            self.tell(request)
        except OSError:
            raise EvaluationStopped("the evaluator process had died") from None
        header = self._read(_HEADER.size, deadline=deadline, stage=stage)
        answer: tuple[str, Any] = pickle.loads(self._read(_HEADER.unpack(header)[0], deadline=deadline, stage=stage))
        return answer

    def tell(self, request: tuple[Any, ...]) -> None:
        """Send `request`; ask() then reads the answer, which some requests (unbind) have none of."""
        assert self.process.stdin is not None
        message = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.write(_HEADER.pack(len(message)) + message)
        self.process.stdin.flush()

    def _read(self, size: int, *, deadline: float, stage: str) -> bytes:
        assert self.process.stdout is not None
        stream = self.process.stdout.fileno()
        # poll, not select: select refuses a descriptor past 1,023, which a busy threaded worker reaches.
        ready = select.poll()
        ready.register(stream, select.POLLIN)
        data = b""
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not ready.poll(left * 1000):
                raise EvaluationStopped(f"{stage} ran past its deadline")
            chunk = os.read(stream, size - len(data))
            if not chunk:
                raise EvaluationStopped("the evaluator process died (its memory cap, or a crash)")
            data += chunk
        return data


def _end(process: subprocess.Popen[bytes], owner: int) -> None:
    # In a process forked from the owner only the inherited pipes are this process's to close: the
    # child serves the owner, which may be asking it now.
    if os.getpid() == owner:
        process.kill()
        process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


_children = threading.local()


def _child(*, memory_bytes: int) -> _Child:
    """This thread's child, started if it has none. A process forked from one that had a child (a
    celery pool, say) starts its own: the pipes it inherited are its parent's."""
    child: _Child | None = getattr(_children, "child", None)
    if child is not None and child.owner == os.getpid() and child.memory_bytes != memory_bytes:
        child.kill()  # its cap is set when it starts
        child = None
    if child is None or child.owner != os.getpid() or child.process.poll() is not None:
        child = _children.child = _Child(memory_bytes=memory_bytes)
    return child


class Evaluation:
    """One check's evaluations in the child: the variables sent once, then each rule, all within one
    deadline `seconds` from the first. A child that overruns is killed (EvaluationStopped)."""

    _numbers = count()

    def __init__(self, variables: dict[str, Any], *, seconds: float, memory_bytes: int) -> None:
        self.number = next(self._numbers)
        self.variables = variables
        self.seconds = seconds
        self.memory_bytes = memory_bytes
        self.deadline: float | None = None

    def run(self, when: str) -> bool:
        """The value of `when`; RuleError if the engine raised or gave something other than a bool,
        EvaluationStopped if the child was stopped."""
        try:
            child = _child(memory_bytes=self.memory_bytes)
        except OSError as exc:
            raise EvaluationStopped(f"the evaluator process could not start: {exc}") from None
        try:
            if child.bound_to != self.number:
                child.bound_to = None
                bind = ("bind", self.variables)
                self._answer(child.ask(bind, deadline=time.monotonic() + SETUP_SECONDS, stage="sending the variables"))
                child.bound_to = self.number
            if self.deadline is None:
                self.deadline = time.monotonic() + self.seconds
            matched: bool = self._answer(child.ask(("run", when), deadline=self.deadline))
            return matched
        except RuleError:
            raise
        except BaseException:
            # Stopped, or interrupted mid-exchange (a signal, an error here): whatever it was doing,
            # its pipe may still hold an answer the next check would read as its own.
            child.kill()
            _children.child = None
            raise

    def close(self) -> None:
        """The check is decided: the child lets go of its variables (up to a MiB of an agent's data,
        several times over once converted) rather than hold them until the thread's next check."""
        child: _Child | None = getattr(_children, "child", None)
        if child is None or child.bound_to != self.number:
            return
        try:
            child.tell(("unbind", None))
            child.bound_to = None
        except OSError:
            child.kill()
            _children.child = None

    @staticmethod
    def _answer(answer: tuple[str, Any]) -> Any:
        kind, value = answer
        if kind == "error":
            raise RuleError(value)
        if kind == "not_bool":
            raise RuleError(f"'when' gave {value}, not a bool")
        return value


# --- The child ------------------------------------------------------------------------------------


def _serve(memory_bytes: int, parent: int) -> None:
    import ctypes
    import resource
    import signal

    import cel

    # Killed by the kernel when the thread that started it ends, should its process die without
    # ending it (a worker SIGKILLed by gunicorn or the OOM killer): otherwise it would run its rule on
    # to the end, under PID 1. PR_SET_PDEATHSIG is 1; Linux only, as the deployment is.
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        return

    # After the imports, which the cap does not concern: it is for what a rule builds.
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    programs: dict[str, Any] = {}
    bindings: Any = None
    while header := requests.read(_HEADER.size):
        kind, value = pickle.loads(requests.read(_HEADER.unpack(header)[0]))
        try:
            if kind == "unbind":
                bindings = None
                continue
            if kind == "ping":
                answer: tuple[str, Any] = ("ok", None)
            elif kind == "bind":
                bindings = None
                bindings = cel.Context(value)
                answer = ("ok", None)
            else:
                if value not in programs:
                    if len(programs) >= 256:
                        programs.clear()
                    programs[value] = cel.compile(value)
                result = programs[value].execute(bindings)
                answer = ("ok", result) if isinstance(result, bool) else ("not_bool", type(result).__name__)
        except BaseException as exc:  # a panic of the engine's Rust code is a BaseException too
            if isinstance(exc, MemoryError | KeyboardInterrupt | SystemExit):
                raise
            panicked = type(exc).__name__ == "PanicException"
            answer = ("error", f"the CEL engine failed: {exc}" if panicked else str(exc))
        message = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(_HEADER.pack(len(message)) + message)
        answers.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
