#!/usr/bin/env python3
"""Reference interpreter of the coro conformance scenario language (SPEC.md).

Usage:  python3 ref.py FILE.co        (needs CPython >= 3.13)

It runs a scenario on *real* CPython asyncio objects and prints the trace.
It is the oracle of the conformance suite: the C interpreter must print the
same bytes.  Every decision taken where SPEC.md is silent is listed in
README.md; the code below follows that list.

Architecture (top to bottom in this file):

  * Limits        -- constants shared with the C interpreter (README.md).
  * Lexer/parser  -- ``parse(text) -> Scenario``.  Line based, iterative
                     (no recursion), resolves every name; raises ``Reject``
                     for anything that must exit with status 2.
  * Virtual loop  -- ``VirtualLoop`` subclasses ``asyncio.BaseEventLoop``
                     and keeps its real ``_run_once``.  Only three things
                     change: ``time()`` returns integer milliseconds, timers
                     with equal deadlines are ordered by arming sequence, and
                     the "selector" never sleeps: it jumps the clock to the
                     earliest live timer, or raises ``Deadlock`` when the
                     loop would block forever.
  * Two more patches where CPython is not deterministic or not finite:
                     ``OrderedTaskGroup`` (a TaskGroup aborts its children in
                     creation order, not in set/address order) and
                     ``GuardedTask`` (a cancel() forwarded around an await
                     cycle aborts the run instead of recursing forever).
  * Run           -- one execution.  Each statement maps to one literal
                     asyncio call (``Run.op_<name>``); ``exec_stmt`` traces a
                     statement's failure and re-raises it (or drops it under
                     ``try``).  ``Run.execute`` is ``asyncio.run`` in slow
                     motion: run main, cancel what is left in creation order,
                     gather it, then print the ``final`` lines.
  * Entry points  -- ``run_text(text) -> (status, stdout, stderr)`` for the
                     differential runner, and ``main()`` for the command line.

The trace is buffered and printed only when the run completes, so a rejected
run prints nothing on stdout.
"""

import sys

if sys.version_info < (3, 13):
    if __name__ == "__main__":
        sys.stderr.write("ref.py: CPython >= 3.13 is required "
                         "(try PYENV_VERSION=3.13.0 python3 ref.py ...)\n")
        sys.exit(2)
    raise ImportError("ref.py needs CPython >= 3.13")

import asyncio  # noqa: E402
import heapq  # noqa: E402
import re  # noqa: E402
from asyncio import events  # noqa: E402

# ---------------------------------------------------------------------------
# Limits (identical in the C interpreter; exceeding one => exit 2, no trace)
# ---------------------------------------------------------------------------
MAX_NUMBER = 1_000_000_000       # largest number literal accepted
MAX_TOKENS = 100                 # tokens per line, `try` and keyword included
MAX_DEPTH = 100                  # nested call/timeout/group levels in a task
MAX_TASKS = 2000                 # tasks created, main included
MAX_STATEMENTS = 200_000         # statements started, whole run
MAX_CLOCK = 1_000_000_000        # the virtual clock may not move past this
MAX_TRACE_BYTES = 16 * 1024 * 1024   # total output, newlines included

sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))


class Reject(Exception):
    """The scenario is refused: exit status 2, message on stderr, no trace."""


class _Abort(SystemExit):
    """Unwinds the whole event loop at once (a task re-raises SystemExit)."""


class LimitExceeded(_Abort):
    """A resource limit was hit during the run (exit status 2)."""


class InternalError(_Abort):
    """A bug in ref.py (an exception the language has no name for)."""


class Deadlock(BaseException):
    """Raised by the virtual selector: nothing ready, no timer, work waiting."""


# ---------------------------------------------------------------------------
# User errors E1..E9
# ---------------------------------------------------------------------------
class UserError(Exception):
    """Base of the nine user error kinds."""


USER_ERRORS = {f"E{i}": type(f"E{i}", (UserError,), {}) for i in range(1, 10)}


# ---------------------------------------------------------------------------
# Lexer and parser
# ---------------------------------------------------------------------------
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
NUMBER_RE = re.compile(r"[0-9]+\Z")
TOKEN_RE = re.compile(r"[\x21-\x7e]+\Z")   # printable ASCII ('#' cut before)
WHITESPACE = " \t\r"

OBJECT_KINDS = {"lock", "event", "sem", "bsem", "cond", "queue", "barrier"}

# Statement signatures: argument kinds after the keyword.
#   MS/N: number; VAR: task variable; PROG: program; OBJ:<kinds>: object.
SIGNATURES = {
    "sleep": ["N"], "yield": [], "block": ["N"],
    "spawn": ["VARDEF", "PROG"], "call": ["PROG"],
    "await": ["VAR"], "cancel": ["VAR"], "shield": ["VAR"], "state": ["VAR"],
    "wait_for": ["VAR", "N"],
    "return": ["N"], "raise": ["ERR"],
    "timeout": ["N"], "group": [],
    "acquire": ["OBJ:lock,sem,bsem,cond"], "release": ["OBJ:lock,sem,bsem,cond"],
    "locked": ["OBJ:lock,sem,bsem,cond"],
    "set": ["OBJ:event"], "clear": ["OBJ:event"], "wait_event": ["OBJ:event"],
    "notify": ["OBJ:cond", "N"], "notify_all": ["OBJ:cond"], "cwait": ["OBJ:cond"],
    "put": ["OBJ:queue", "N"], "put_nowait": ["OBJ:queue", "N"],
    "get": ["OBJ:queue"], "get_nowait": ["OBJ:queue"],
    "task_done": ["OBJ:queue"], "join": ["OBJ:queue"], "qsize": ["OBJ:queue"],
    "bwait": ["OBJ:barrier"], "babort": ["OBJ:barrier"], "breset": ["OBJ:barrier"],
    "cancelling": [], "uncancel": [], "all_tasks": [],
    # variable-length statements, checked by hand:
    "log": None, "gather": None, "wait": None, "shutdown": None,
}
BLOCKS = {"timeout", "group"}
WAIT_MODES = {"first": asyncio.FIRST_COMPLETED,
              "exception": asyncio.FIRST_EXCEPTION,
              "all": asyncio.ALL_COMPLETED}


class Stmt:
    """One statement.  ``args`` are already converted (ints, names, ...)."""
    __slots__ = ("op", "args", "text", "tried", "body", "line")

    def __init__(self, op, args, text, tried, line):
        self.op, self.args, self.text = op, args, text
        self.tried, self.line = tried, line
        self.body = [] if op in BLOCKS else None


class Scenario:
    def __init__(self):
        self.objects = {}      # name -> (kind, params)  in declaration order
        self.programs = {}     # name -> list of Stmt
        self.spawned = set()   # every VAR that is the target of some spawn
        self.refs = []         # (line, kind, name) to resolve at the end


def _tokens(raw, lineno):
    line = raw.split("#", 1)[0]
    for ch in WHITESPACE:
        line = line.replace(ch, " ")
    toks = line.split(" ")
    toks = [t for t in toks if t]
    for t in toks:
        if not TOKEN_RE.match(t):
            raise Reject(f"line {lineno}: invalid character in {t!r}")
    if len(toks) > MAX_TOKENS:
        raise Reject(f"line {lineno}: more than {MAX_TOKENS} tokens")
    return toks


def _number(tok, lineno):
    if not NUMBER_RE.match(tok):
        raise Reject(f"line {lineno}: number expected, got {tok!r}")
    value = int(tok)
    if value > MAX_NUMBER:
        raise Reject(f"line {lineno}: number {tok} above {MAX_NUMBER}")
    return value


def _name(tok, lineno):
    if not NAME_RE.match(tok):
        raise Reject(f"line {lineno}: name expected, got {tok!r}")
    return tok


def _parse_declaration(sc, toks, lineno):
    kind = toks[0]
    arity = {"lock": 2, "event": 2, "cond": 2, "sem": 3, "bsem": 3,
             "barrier": 3, "queue": 4}[kind]
    if len(toks) != arity:
        raise Reject(f"line {lineno}: '{kind}' takes {arity - 1} argument(s)")
    name = _name(toks[1], lineno)
    if name in sc.objects or name in sc.programs:
        raise Reject(f"line {lineno}: {name!r} declared twice")
    params = ()
    if kind in ("sem", "bsem", "barrier"):
        params = (_number(toks[2], lineno),)
        if kind == "barrier" and params[0] < 1:
            raise Reject(f"line {lineno}: a barrier needs at least 1 party")
    elif kind == "queue":
        if toks[3] not in ("fifo", "lifo", "prio"):
            raise Reject(f"line {lineno}: queue kind must be fifo, lifo or prio")
        params = (_number(toks[2], lineno), toks[3])
    sc.objects[name] = (kind, params)


def _parse_args(sc, op, rest, lineno):
    """Check and convert the arguments of statement `op`."""
    sig = SIGNATURES[op]
    if sig is None:
        return _parse_varargs(sc, op, rest, lineno)
    if len(rest) != len(sig):
        raise Reject(f"line {lineno}: '{op}' takes {len(sig)} argument(s)")
    args = []
    for kind, tok in zip(sig, rest):
        if kind == "N":
            args.append(_number(tok, lineno))
        elif kind == "ERR":
            if tok not in USER_ERRORS:
                raise Reject(f"line {lineno}: unknown error {tok!r}")
            args.append(tok)
        else:
            name = _name(tok, lineno)
            if kind == "VARDEF":
                sc.spawned.add(name)
            sc.refs.append((lineno, kind, name))
            args.append(name)
    return tuple(args)


def _parse_varargs(sc, op, rest, lineno):
    if op == "log":
        return tuple(rest)
    if op == "shutdown":
        if len(rest) not in (1, 2) or (len(rest) == 2 and rest[1] != "immediate"):
            raise Reject(f"line {lineno}: usage: shutdown Q [immediate]")
        name = _name(rest[0], lineno)
        sc.refs.append((lineno, "OBJ:queue", name))
        return (name, len(rest) == 2)
    if op == "gather":
        ret_exc = bool(rest) and rest[-1] == "-x"
        names = rest[:-1] if ret_exc else rest
        return (_var_list(sc, names, lineno), ret_exc)
    # wait MODE MS|- VAR...
    if len(rest) < 2 or rest[0] not in WAIT_MODES:
        raise Reject(f"line {lineno}: usage: wait first|exception|all MS|- VAR...")
    timeout = None if rest[1] == "-" else _number(rest[1], lineno)
    return (rest[0], timeout, _var_list(sc, rest[2:], lineno))


def _var_list(sc, toks, lineno):
    names = tuple(_name(t, lineno) for t in toks)
    sc.refs.extend((lineno, "VAR", n) for n in names)
    return names


def _resolve(sc):
    """Check every name once the whole file is known."""
    if "main" not in sc.programs:
        raise Reject("no 'def main'")
    for lineno, kind, name in sc.refs:
        if kind == "PROG":
            if name not in sc.programs:
                raise Reject(f"line {lineno}: unknown program {name!r}")
        elif kind in ("VAR", "VARDEF"):
            if name in sc.programs or name in sc.objects:
                raise Reject(f"line {lineno}: {name!r} is a program or object, "
                             "not a task variable")
            if name not in sc.spawned:
                raise Reject(f"line {lineno}: unknown task {name!r}")
        else:
            allowed = kind[4:].split(",")
            if name not in sc.objects:
                raise Reject(f"line {lineno}: unknown object {name!r}")
            if sc.objects[name][0] not in allowed:
                raise Reject(f"line {lineno}: {name!r} is a "
                             f"{sc.objects[name][0]}, expected {'/'.join(allowed)}")


def parse(text):
    """Parse a scenario; raise Reject with a message if it is not valid."""
    sc = Scenario()
    stack = []                        # open bodies: [(list, opener line)]
    for lineno, raw in enumerate(text.split("\n"), 1):
        toks = _tokens(raw, lineno)
        if not toks:
            continue
        if not stack:                 # top level
            if toks[0] == "def":
                if len(toks) != 2:
                    raise Reject(f"line {lineno}: usage: def PROG")
                name = _name(toks[1], lineno)
                if name in sc.programs or name in sc.objects:
                    raise Reject(f"line {lineno}: {name!r} declared twice")
                sc.programs[name] = []
                stack.append((sc.programs[name], lineno))
            elif toks[0] in OBJECT_KINDS:
                _parse_declaration(sc, toks, lineno)
            else:
                raise Reject(f"line {lineno}: declaration or 'def' expected")
            continue
        if toks == ["end"]:
            stack.pop()
            continue
        tried = toks[0] == "try"
        if tried:
            toks = toks[1:]
            if not toks or toks[0] == "try":
                raise Reject(f"line {lineno}: 'try' needs one statement")
        op = toks[0]
        if op not in SIGNATURES:
            raise Reject(f"line {lineno}: unknown statement {op!r}")
        args = _parse_args(sc, op, toks[1:], lineno)
        st = Stmt(op, args, " ".join(toks), tried, lineno)
        stack[-1][0].append(st)
        if st.body is not None:
            stack.append((st.body, lineno))
    if stack:
        raise Reject(f"line {stack[-1][1]}: missing 'end'")
    _resolve(sc)
    return sc


# ---------------------------------------------------------------------------
# Virtual-time event loop
# ---------------------------------------------------------------------------
class VirtualTimer(events.TimerHandle):
    """A TimerHandle ordered by (deadline, arming sequence): equal deadlines
    fire first-armed-first (CPython compares the deadline only)."""
    __slots__ = ("_seq",)

    def __init__(self, when, callback, args, loop, seq, context=None):
        super().__init__(when, callback, args, loop, context)
        self._seq = seq

    def __lt__(self, other):
        return (self._when, self._seq) < (other._when, other._seq)

    def __gt__(self, other):
        return (self._when, self._seq) > (other._when, other._seq)

    def __le__(self, other):
        return not self.__gt__(other)

    def __ge__(self, other):
        return not self.__lt__(other)


class _VirtualSelector:
    """Stands in for the I/O poll of ``_run_once``: it never waits."""

    def __init__(self, loop):
        self._loop = loop

    def select(self, timeout):
        if timeout is None:                 # nothing ready and no timer
            raise Deadlock()
        if timeout > 0:                     # idle: jump to the next deadline
            self._loop._set_clock(self._loop._scheduled[0]._when)
        return []


class VirtualLoop(asyncio.BaseEventLoop):
    """asyncio's BaseEventLoop with an integer millisecond virtual clock."""

    def __init__(self):
        super().__init__()
        self.set_debug(False)               # PYTHONASYNCIODEBUG must not matter
        self._now = 0
        self._timer_seq = 0
        self._clock_resolution = 1          # fire when `when < now + 1`
        self._selector = _VirtualSelector(self)
        self.cancel_chain = {}              # tasks inside GuardedTask.cancel
        self.set_task_factory(_task_factory)

    def time(self):
        return self._now

    def _set_clock(self, when):
        if when > MAX_CLOCK:
            raise LimitExceeded(f"virtual clock beyond {MAX_CLOCK} ms")
        self._now = max(self._now, when)

    def advance(self, ms):
        """`block MS`: the clock moves, no other task runs."""
        self._set_clock(self._now + ms)

    def call_at(self, when, callback, *args, context=None):
        # Same as BaseEventLoop.call_at, with a sequence-numbered timer.
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        self._timer_seq += 1
        timer = VirtualTimer(when, callback, args, self, self._timer_seq, context)
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def _process_events(self, event_list):
        pass

    def _write_to_self(self):
        pass


# ---------------------------------------------------------------------------
# Tasks: cancellation must not loop around an await cycle
# ---------------------------------------------------------------------------
class GuardedTask(asyncio.Task):
    """asyncio.Task whose cancel() refuses to re-enter itself.

    Task.cancel() forwards to the future the task awaits; around an await
    cycle (a task gathering itself, two tasks awaiting each other, ...)
    CPython recurses until RecursionError.  Such a run is aborted instead
    (exit status 2), like a resource limit."""

    def cancel(self, msg=None):
        chain = self.get_loop().cancel_chain
        if self in chain:
            raise LimitExceeded("cancel() forwarded around an await cycle")
        chain[self] = None
        try:
            return super().cancel(msg)
        finally:
            del chain[self]


def _task_factory(loop, coro, context=None):
    return GuardedTask(coro, loop=loop, context=context)


# ---------------------------------------------------------------------------
# TaskGroup with a deterministic child order
# ---------------------------------------------------------------------------
class _OrderedTaskSet:
    """Insertion-ordered stand-in for TaskGroup._tasks (a set in CPython,
    iterated by memory address when the group aborts)."""
    __slots__ = ("_d",)

    def __init__(self):
        self._d = {}

    def add(self, task):
        self._d[task] = None

    def discard(self, task):
        self._d.pop(task, None)

    def __iter__(self):
        return iter(list(self._d))

    def __len__(self):
        return len(self._d)

    def __bool__(self):
        return bool(self._d)


class OrderedTaskGroup(asyncio.TaskGroup):
    """asyncio.TaskGroup whose abort cancels children in creation order."""

    def __init__(self):
        super().__init__()
        self._tasks = _OrderedTaskSet()


# ---------------------------------------------------------------------------
# Rendering of values and errors
# ---------------------------------------------------------------------------
def error_name(exc):
    """The language's name for an exception (`group(...)` recursively)."""
    out, size = [], 0
    stack = [exc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            piece = item
        elif isinstance(item, BaseExceptionGroup):
            piece = "group("
            stack.append(")")
            members = list(item.exceptions)
            for i, member in enumerate(reversed(members)):
                stack.append(member)
                if i < len(members) - 1:
                    stack.append(",")
        else:
            piece = _leaf_error_name(item)
        out.append(piece)
        size += len(piece)
        if size > MAX_TRACE_BYTES:
            raise LimitExceeded("error text too large")
    return "".join(out)


_LEAF_ERRORS = {
    asyncio.CancelledError: "cancelled",
    TimeoutError: "timeout",
    asyncio.QueueFull: "full",
    asyncio.QueueEmpty: "empty",
    asyncio.QueueShutDown: "shutdown",
    asyncio.BrokenBarrierError: "broken",
    RuntimeError: "invalid",
    ValueError: "invalid",
    asyncio.InvalidStateError: "invalid",
}


def _leaf_error_name(exc):
    if isinstance(exc, UserError):
        return type(exc).__name__
    name = _LEAF_ERRORS.get(type(exc))
    if name is None:
        raise InternalError(f"ref.py bug: unexpected {type(exc).__name__}: {exc!r}")
    return name


def render(value):
    """A value: integer, none, true/false, [v,...], or !error in a list."""
    if value is None:
        return "none"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, BaseException):
        return "!" + error_name(value)
    raise InternalError(f"ref.py bug: unexpected value {value!r}")


def task_state(task):
    """`pending`, the result, or `!error` (used by `state` and `final`)."""
    if not task.done():
        return "pending"
    if task.cancelled():
        return "!cancelled"
    exc = task.exception()
    if exc is not None:
        return "!" + error_name(exc)
    return render(task.result())


# ---------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------
class Return:
    """Signal of a `return N` travelling up to its program."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class Env:
    """Lexical context: innermost `group` block of this body, nesting depth."""
    __slots__ = ("tg", "depth")

    def __init__(self, tg, depth):
        self.tg, self.depth = tg, depth


_QUEUE_CLASSES = {"fifo": asyncio.Queue, "lifo": asyncio.LifoQueue,
                  "prio": asyncio.PriorityQueue}
_OBJECT_FACTORIES = {
    "lock": lambda: asyncio.Lock(),
    "event": lambda: asyncio.Event(),
    "cond": lambda: asyncio.Condition(),
    "sem": lambda n: asyncio.Semaphore(n),
    "bsem": lambda n: asyncio.BoundedSemaphore(n),
    "barrier": lambda n: asyncio.Barrier(n),
    "queue": lambda maxsize, kind: _QUEUE_CLASSES[kind](maxsize),
}


class Run:
    """One execution of a parsed scenario on a fresh VirtualLoop."""

    def __init__(self, scenario):
        self.sc = scenario
        self.loop = VirtualLoop()
        self.loop.set_exception_handler(lambda loop, context: None)
        self.objects = {name: _OBJECT_FACTORIES[kind](*params)
                        for name, (kind, params) in scenario.objects.items()}
        self.lines = []
        self.size = 0
        self.tasks = []          # every task, creation order
        self.live = {}           # tasks maybe not done, creation order
        self.vars = {}           # task variable -> latest task spawned
        self.statements = 0

    # -- output -------------------------------------------------------------
    def emit(self, line):
        self.size += len(line) + 1
        if self.size > MAX_TRACE_BYTES:
            raise LimitExceeded(f"trace above {MAX_TRACE_BYTES} bytes")
        self.lines.append(line + "\n")

    def trace(self, text):
        name = asyncio.current_task().get_name()
        self.emit(f"{self.loop.time()} {name} {text}")

    def trace_value(self, st, value):
        self.trace(f"{st.text} = {value}")

    # -- the run (asyncio.run, step by step) ---------------------------------
    def execute(self):
        """Run the scenario; return the whole trace (final lines included)."""
        try:
            self.run_phases()
            for task in self.tasks:
                self.emit(f"final {task.get_name()} = {task_state(task)}")
            return "".join(self.lines)
        finally:
            self.discard()

    def run_phases(self):
        """Main phase then shutdown phase; a deadlock ends the run at once."""
        loop = self.loop
        try:
            main = loop.create_task(self.run_program("main", 0), name="main")
            self.register(main)
            try:
                loop.run_until_complete(main)
            except (Deadlock, _Abort):
                raise
            except BaseException:
                pass          # main failed: its state is in its final line
            self.shut_down()
        except Deadlock:
            self.emit(f"{loop.time()} - deadlock")

    def discard(self):
        """Close the loop and the coroutines of the tasks left pending, now,
        while no loop runs (rather than at some garbage collection during a
        later run).  Their clean-up code may fail: that is of no interest."""
        self.loop.close()
        for task in self.tasks:
            if not task.done():
                try:
                    task.get_coro().close()
                except BaseException:
                    pass

    def shut_down(self):
        """Cancel the tasks left, in creation order, and wait for them."""
        left = [t for t in self.tasks if not t.done()]
        if not left:
            return
        for task in left:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))

    def register(self, task):
        self.tasks.append(task)
        self.live[task] = None
        if len(self.tasks) > MAX_TASKS:
            raise LimitExceeded(f"more than {MAX_TASKS} tasks")

    # -- programs, bodies, statements ------------------------------------------
    async def run_program(self, prog, depth):
        result = await self.exec_body(self.sc.programs[prog], Env(None, depth))
        return result.value if result is not None else None

    async def exec_body(self, body, env):
        for st in body:
            result = await self.exec_stmt(st, env)
            if result is not None:
                return result
        return None

    async def exec_stmt(self, st, env):
        self.statements += 1
        if self.statements > MAX_STATEMENTS:
            raise LimitExceeded(f"more than {MAX_STATEMENTS} statements")
        try:
            return await getattr(self, "op_" + st.op)(st, env)
        except (Exception, asyncio.CancelledError) as exc:
            self.trace(f"{st.text} !{error_name(exc)}")
            if st.tried:
                return None
            raise

    def enter(self, env, tg):
        """Env for a nested call/block body, enforcing MAX_DEPTH."""
        if env.depth + 1 > MAX_DEPTH:
            raise LimitExceeded(f"nesting deeper than {MAX_DEPTH}")
        return Env(tg, env.depth + 1)

    async def run_block(self, manager, body, env):
        """`async with manager: <body>`, spelled out (PEP 492) so that an
        abort of the run does not wait in TaskGroup.__aexit__."""
        await manager.__aenter__()
        try:
            result = await self.exec_body(body, env)
        except (_Abort, GeneratorExit):
            raise
        except BaseException as exc:
            if not await manager.__aexit__(type(exc), exc, exc.__traceback__):
                raise
            return None
        await manager.__aexit__(None, None, None)
        return result

    def task(self, var):
        """The task bound to VAR; RuntimeError (`invalid`) if none yet."""
        try:
            return self.vars[var]
        except KeyError:
            raise RuntimeError(f"task variable {var} is not bound yet") from None

    def current(self):
        return asyncio.current_task()

    # -- statements: one literal asyncio call each ------------------------------
    async def op_log(self, st, env):
        self.trace(st.text)

    async def op_sleep(self, st, env):
        await asyncio.sleep(st.args[0])

    async def op_yield(self, st, env):
        await asyncio.sleep(0)

    async def op_block(self, st, env):
        self.loop.advance(st.args[0])

    async def op_spawn(self, st, env):
        var, prog = st.args
        coro = self.run_program(prog, 0)
        if env.tg is None:
            task = asyncio.create_task(coro, name=var)
        else:
            task = env.tg.create_task(coro, name=var)
        self.vars[var] = task
        self.register(task)

    async def op_call(self, st, env):
        inner = self.enter(env, None)
        value = await self.run_program(st.args[0], inner.depth)
        self.trace_value(st, render(value))

    async def op_await(self, st, env):
        self.trace_value(st, render(await self.task(st.args[0])))

    async def op_cancel(self, st, env):
        self.trace_value(st, render(self.task(st.args[0]).cancel()))

    async def op_gather(self, st, env):
        names, return_exceptions = st.args
        tasks = [self.task(n) for n in names]
        values = await asyncio.gather(*tasks, return_exceptions=return_exceptions)
        self.trace_value(st, render(values))

    async def op_wait(self, st, env):
        mode, timeout, names = st.args
        tasks = {n: self.task(n) for n in names}      # distinct, in order
        done, _pending = await asyncio.wait(list(tasks.values()), timeout=timeout,
                                            return_when=WAIT_MODES[mode])
        done_names = [n for n, t in tasks.items() if t in done]
        pending_names = [n for n, t in tasks.items() if t not in done]
        self.trace_value(st, f"done[{','.join(done_names)}] "
                             f"pending[{','.join(pending_names)}]")

    async def op_wait_for(self, st, env):
        var, timeout = st.args
        self.trace_value(st, render(await asyncio.wait_for(self.task(var), timeout)))

    async def op_shield(self, st, env):
        self.trace_value(st, render(await asyncio.shield(self.task(st.args[0]))))

    async def op_state(self, st, env):
        self.trace_value(st, task_state(self.task(st.args[0])))

    async def op_return(self, st, env):
        return Return(st.args[0])

    async def op_raise(self, st, env):
        raise USER_ERRORS[st.args[0]]()

    async def op_timeout(self, st, env):
        inner = self.enter(env, env.tg)
        return await self.run_block(asyncio.timeout(st.args[0]), st.body, inner)

    async def op_group(self, st, env):
        group = OrderedTaskGroup()
        inner = self.enter(env, group)
        return await self.run_block(group, st.body, inner)

    async def op_acquire(self, st, env):
        await self.objects[st.args[0]].acquire()

    async def op_release(self, st, env):
        self.objects[st.args[0]].release()

    async def op_locked(self, st, env):
        self.trace_value(st, render(self.objects[st.args[0]].locked()))

    async def op_set(self, st, env):
        self.objects[st.args[0]].set()

    async def op_clear(self, st, env):
        self.objects[st.args[0]].clear()

    async def op_wait_event(self, st, env):
        await self.objects[st.args[0]].wait()

    async def op_notify(self, st, env):
        self.objects[st.args[0]].notify(st.args[1])

    async def op_notify_all(self, st, env):
        self.objects[st.args[0]].notify_all()

    async def op_cwait(self, st, env):
        await self.objects[st.args[0]].wait()

    async def op_put(self, st, env):
        await self.objects[st.args[0]].put(st.args[1])

    async def op_put_nowait(self, st, env):
        self.objects[st.args[0]].put_nowait(st.args[1])

    async def op_get(self, st, env):
        self.trace_value(st, render(await self.objects[st.args[0]].get()))

    async def op_get_nowait(self, st, env):
        self.trace_value(st, render(self.objects[st.args[0]].get_nowait()))

    async def op_task_done(self, st, env):
        self.objects[st.args[0]].task_done()

    async def op_join(self, st, env):
        await self.objects[st.args[0]].join()

    async def op_qsize(self, st, env):
        self.trace_value(st, render(self.objects[st.args[0]].qsize()))

    async def op_shutdown(self, st, env):
        name, immediate = st.args
        self.objects[name].shutdown(immediate=immediate)

    async def op_bwait(self, st, env):
        self.trace_value(st, render(await self.objects[st.args[0]].wait()))

    async def op_babort(self, st, env):
        await self.objects[st.args[0]].abort()

    async def op_breset(self, st, env):
        await self.objects[st.args[0]].reset()

    async def op_cancelling(self, st, env):
        self.trace_value(st, render(self.current().cancelling()))

    async def op_uncancel(self, st, env):
        self.trace_value(st, render(self.current().uncancel()))

    async def op_all_tasks(self, st, env):
        for task in [t for t in self.live if t.done()]:
            del self.live[task]
        self.trace_value(st, "[" + ",".join(t.get_name() for t in self.live) + "]")


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------
def run_text(text):
    """Run scenario source `text`; return (exit status, stdout, stderr).

    Status 0: a trace; 2: rejected (parse error, unknown name, limit).
    A bug in ref.py raises (never returns a status for it)."""
    try:
        scenario = parse(text)
        return 0, Run(scenario).execute(), ""
    except Reject as exc:
        return 2, "", f"ref.py: rejected: {exc}\n"
    except LimitExceeded as exc:
        return 2, "", f"ref.py: limit exceeded: {exc}\n"
    except InternalError as exc:
        raise RuntimeError(str(exc)) from exc


def read_source(path):
    """Scenario files are bytes; latin-1 maps each byte to one character."""
    with open(path, "rb") as f:
        return f.read().decode("latin-1")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: ref.py FILE.co\n")
        return 2
    try:
        text = read_source(argv[0])
    except OSError as exc:
        sys.stderr.write(f"ref.py: {exc}\n")
        return 2
    status, out, err = run_text(text)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main())
