/* scenario.c - the C interpreter of the conformance scenario language
 * (../shared/conformance/SPEC.md), written only against the public API of
 * coro_loop.h and coro_sync.h. It must print, byte for byte, what ref.py
 * prints on CPython's asyncio: every decision ref.py took where SPEC.md is
 * silent (README.md beside this file) is mirrored here.
 *
 *   build/scenario FILE.co     trace on stdout, exit 0 (deadlock included);
 *                              exit 2 + message on stderr, no trace, for a
 *                              scenario that does not parse, names something
 *                              unknown, or exceeds a limit.
 *
 * Layout: limits; parser (line based, mirrors ref.py's parse/_resolve);
 * run state (tasks, objects, trace); the program coroutine (one frame per
 * program execution, with a stack of open timeout/group blocks; ops are
 * dispatched with if-chains because an await inside a C switch traps);
 * the run (coro_run, then the final lines); entry points. A limit or a
 * cancellation cycle abandons the run with longjmp (the fuzz target calls
 * scenario_run() in-process).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coro_sync.h"

/* ---- limits: identical in ref.py; exceeding one => exit 2, no trace */
#define MAX_NUMBER 1000000000L
#define MAX_TOKENS 100
#define MAX_DEPTH 100
#define MAX_TASKS 2000
#define MAX_STATEMENTS 200000L
#define MAX_CLOCK 1000000000L
#define MAX_TRACE_BYTES (16L * 1024 * 1024)

/* Values: >= 0 an integer (<= MAX_NUMBER), VAL_NONE for `none`. Errors:
 * the library's codes, E1..E9 as CORO_EUSER(1..9), and two codes of ours. */
#define VAL_NONE 2147483647
#define ERR_FULL (-2000001)
#define ERR_EMPTY (-2000002)
#define ERR_GROUP_BASE 1000000 /* group k is -(ERR_GROUP_BASE + k) */

/* ---------------------------------------------------------------------- */
/* Parsed scenario                                                         */
/* ---------------------------------------------------------------------- */

enum op {
    OP_LOG, OP_SLEEP, OP_YIELD, OP_BLOCK, OP_SPAWN, OP_CALL, OP_AWAIT, OP_CANCEL,
    OP_SHIELD, OP_STATE, OP_WAIT_FOR, OP_RETURN, OP_RAISE, OP_TIMEOUT, OP_GROUP,
    OP_ACQUIRE, OP_RELEASE, OP_LOCKED, OP_SET, OP_CLEAR, OP_WAIT_EVENT, OP_NOTIFY,
    OP_NOTIFY_ALL, OP_CWAIT, OP_PUT, OP_PUT_NOWAIT, OP_GET, OP_GET_NOWAIT,
    OP_TASK_DONE, OP_JOIN, OP_QSIZE, OP_BWAIT, OP_BABORT, OP_BRESET, OP_CANCELLING,
    OP_UNCANCEL, OP_ALL_TASKS, OP_GATHER, OP_WAIT, OP_SHUTDOWN, OP_COUNT
};

/* Argument kinds of the fixed-arity statements (ref.py's SIGNATURES). */
enum arg { A_N = 1, A_VARDEF, A_VAR, A_PROG, A_ERR, A_LOCKISH, A_EVENT, A_COND, A_QUEUE, A_BARRIER };

static const struct {
    const char *name;
    int nargs; /* -1: checked by hand */
    unsigned char args[2];
} OPS[OP_COUNT] = {
    [OP_LOG] = {"log", -1, {0}},           [OP_SLEEP] = {"sleep", 1, {A_N}},
    [OP_YIELD] = {"yield", 0, {0}},        [OP_BLOCK] = {"block", 1, {A_N}},
    [OP_SPAWN] = {"spawn", 2, {A_VARDEF, A_PROG}},
    [OP_CALL] = {"call", 1, {A_PROG}},     [OP_AWAIT] = {"await", 1, {A_VAR}},
    [OP_CANCEL] = {"cancel", 1, {A_VAR}},  [OP_SHIELD] = {"shield", 1, {A_VAR}},
    [OP_STATE] = {"state", 1, {A_VAR}},    [OP_WAIT_FOR] = {"wait_for", 2, {A_VAR, A_N}},
    [OP_RETURN] = {"return", 1, {A_N}},    [OP_RAISE] = {"raise", 1, {A_ERR}},
    [OP_TIMEOUT] = {"timeout", 1, {A_N}},  [OP_GROUP] = {"group", 0, {0}},
    [OP_ACQUIRE] = {"acquire", 1, {A_LOCKISH}}, [OP_RELEASE] = {"release", 1, {A_LOCKISH}},
    [OP_LOCKED] = {"locked", 1, {A_LOCKISH}},   [OP_SET] = {"set", 1, {A_EVENT}},
    [OP_CLEAR] = {"clear", 1, {A_EVENT}},  [OP_WAIT_EVENT] = {"wait_event", 1, {A_EVENT}},
    [OP_NOTIFY] = {"notify", 2, {A_COND, A_N}}, [OP_NOTIFY_ALL] = {"notify_all", 1, {A_COND}},
    [OP_CWAIT] = {"cwait", 1, {A_COND}},   [OP_PUT] = {"put", 2, {A_QUEUE, A_N}},
    [OP_PUT_NOWAIT] = {"put_nowait", 2, {A_QUEUE, A_N}},
    [OP_GET] = {"get", 1, {A_QUEUE}},      [OP_GET_NOWAIT] = {"get_nowait", 1, {A_QUEUE}},
    [OP_TASK_DONE] = {"task_done", 1, {A_QUEUE}}, [OP_JOIN] = {"join", 1, {A_QUEUE}},
    [OP_QSIZE] = {"qsize", 1, {A_QUEUE}},  [OP_BWAIT] = {"bwait", 1, {A_BARRIER}},
    [OP_BABORT] = {"babort", 1, {A_BARRIER}}, [OP_BRESET] = {"breset", 1, {A_BARRIER}},
    [OP_CANCELLING] = {"cancelling", 0, {0}}, [OP_UNCANCEL] = {"uncancel", 0, {0}},
    [OP_ALL_TASKS] = {"all_tasks", 0, {0}}, [OP_GATHER] = {"gather", -1, {0}},
    [OP_WAIT] = {"wait", -1, {0}},         [OP_SHUTDOWN] = {"shutdown", -1, {0}},
};

enum kind { K_LOCK, K_EVENT, K_SEM, K_BSEM, K_COND, K_QUEUE, K_BARRIER };
static const char *const KINDS[] = {"lock", "event", "sem", "bsem", "cond", "queue", "barrier"};

typedef struct stmt stmt;
typedef struct { /* statements are allocated one by one: their addresses
                    stay put while a body grows (refs point into them) */
    stmt **v;
    int n, cap;
} body;

struct stmt {
    int op, line, tried;
    char *text;
    long num[2];    /* numbers; wait: num[0] mode, num[1] timeout (-1: none) */
    int ref[2];     /* resolved indexes: var / prog / object / error number */
    int *vars, nvars, flag; /* gather/wait VAR lists; -x, immediate */
    body body;      /* timeout and group blocks */
};

typedef struct {
    char *name;
    body body;
    int blocks; /* deepest block nesting in the body */
} program;

typedef struct {
    char *name;
    int kind;
    long n, max, qkind; /* sem/bsem/barrier: n; queue: max, qkind */
} objdecl;

typedef struct {
    char *name;
    int spawned;
} vardecl;

/* ---------------------------------------------------------------------- */
/* Run state                                                               */
/* ---------------------------------------------------------------------- */

typedef struct pframe pframe;

typedef struct itask {
    coro_group_task gt; /* first: coro_task * -> itask * by a cast */
    const char *name;
    pframe *frame;
} itask;

typedef struct {
    int kind;
    int ready;
    union {
        coro_lock lock;
        coro_event event;
        coro_sem sem;
        coro_cond cond;
        coro_queue queue;
        coro_barrier barrier;
    } u;
    long long *buf;
} object;

typedef struct {
    int n;
    int *v;
} gerror;

/* A growable string for values and error names. */
typedef struct {
    char *s;
    size_t n, cap;
} str;

static struct run {
    /* scenario */
    program *progs;
    int nprogs, capprogs;
    objdecl *decls;
    int ndecls, capdecls;
    vardecl *vars;
    int nvars, capvars;
    /* execution */
    coro_loop L;
    coro_backend clock;
    long now;
    object *objects;
    itask **tasks;
    int ntasks;
    itask **bound; /* per variable: the latest task, or NULL */
    long statements;
    char *out;
    size_t outlen, outcap;
    gerror *groups;
    int ngroups, capgroups;
    pframe **frames; /* every frame allocated (freed at the end) */
    int nframes, capframes;
    pframe *free_frames;
    str scratch;      /* the value/error text being built (one at a time) */
    char *line;       /* parser buffers, freed even when a parse is rejected */
    void *stack;
    jmp_buf abort;
    char msg[256];
} R;

/* Abandons the run: exit status 2 with a message, no trace. */
static void reject(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R.msg, sizeof R.msg, fmt, ap);
    va_end(ap);
    longjmp(R.abort, 1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) reject("limit exceeded: out of memory");
    return q;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) reject("limit exceeded: out of memory");
    return p;
}

#define GROW(arr, n, cap)                                                      \
    do {                                                                       \
        if ((n) == (cap)) {                                                    \
            (cap) = (cap) ? 2 * (cap) : 8;                                     \
            (arr) = xrealloc((arr), (size_t)(cap) * sizeof *(arr));            \
        }                                                                      \
    } while (0)

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = xrealloc(NULL, n);
    memcpy(d, s, n);
    return d;
}

/* ---------------------------------------------------------------------- */
/* Parser                                                                  */
/* ---------------------------------------------------------------------- */

static int is_name(const char *t)
{
    if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || *t == '_')) return 0;
    for (t++; *t; t++)
        if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || *t == '_' ||
              (*t >= '0' && *t <= '9')))
            return 0;
    return 1;
}

static long number(const char *t, int line)
{
    long v = 0;
    if (!*t) reject("line %d: number expected", line);
    for (const char *p = t; *p; p++) {
        if (*p < '0' || *p > '9') reject("line %d: number expected, got '%s'", line, t);
        v = v * 10 + (*p - '0');
        if (v > MAX_NUMBER) reject("line %d: number %s above %ld", line, t, MAX_NUMBER);
    }
    return v;
}

static const char *name_tok(const char *t, int line)
{
    if (!is_name(t)) reject("line %d: name expected, got '%s'", line, t);
    return t;
}

static int find_prog(const char *n)
{
    for (int i = 0; i < R.nprogs; i++)
        if (!strcmp(R.progs[i].name, n)) return i;
    return -1;
}

static int find_obj(const char *n)
{
    for (int i = 0; i < R.ndecls; i++)
        if (!strcmp(R.decls[i].name, n)) return i;
    return -1;
}

static int var_index(const char *n)
{
    for (int i = 0; i < R.nvars; i++)
        if (!strcmp(R.vars[i].name, n)) return i;
    GROW(R.vars, R.nvars, R.capvars);
    R.vars[R.nvars].name = xstrdup(n);
    R.vars[R.nvars].spawned = 0;
    return R.nvars++;
}

/* A reference to resolve once the whole file is read (ref.py's refs). */
typedef struct {
    int line, kind;
    char *name;
    int *slot;
} ref;
static ref *refs;
static int nrefs, caprefs;

static void add_ref(int line, int kind, const char *name, int *slot)
{
    GROW(refs, nrefs, caprefs);
    refs[nrefs].line = line;
    refs[nrefs].kind = kind;
    refs[nrefs].name = xstrdup(name);
    refs[nrefs].slot = slot;
    nrefs++;
}

/* Splits a line into tokens (ref.py's _tokens). Returns the count. */
static int tokenize(char *line, char **toks, int lineno)
{
    int n = 0;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    for (char *p = line; *p; p++)
        if (*p == '\t' || *p == '\r') *p = ' ';
    for (char *p = line; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        char *start = p;
        while (*p && *p != ' ') {
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
                reject("line %d: invalid character", lineno);
            p++;
        }
        if (*p) *p++ = 0;
        if (n == MAX_TOKENS) reject("line %d: more than %d tokens", lineno, MAX_TOKENS);
        toks[n++] = start;
    }
    return n;
}

static void parse_decl(char **toks, int n, int line)
{
    int kind = -1;
    for (int k = 0; k <= K_BARRIER; k++)
        if (!strcmp(toks[0], KINDS[k])) kind = k;
    int arity = kind == K_QUEUE ? 4 : (kind == K_SEM || kind == K_BSEM || kind == K_BARRIER) ? 3 : 2;
    if (n != arity) reject("line %d: '%s' takes %d argument(s)", line, toks[0], arity - 1);
    const char *name = name_tok(toks[1], line);
    if (find_obj(name) >= 0 || find_prog(name) >= 0) reject("line %d: '%s' declared twice", line, name);
    GROW(R.decls, R.ndecls, R.capdecls);
    objdecl *d = &R.decls[R.ndecls];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    if (kind == K_SEM || kind == K_BSEM || kind == K_BARRIER) {
        d->n = number(toks[2], line);
        if (kind == K_BARRIER && d->n < 1) reject("line %d: a barrier needs at least 1 party", line);
    } else if (kind == K_QUEUE) {
        if (strcmp(toks[3], "fifo") && strcmp(toks[3], "lifo") && strcmp(toks[3], "prio"))
            reject("line %d: queue kind must be fifo, lifo or prio", line);
        d->max = number(toks[2], line);
        d->qkind = !strcmp(toks[3], "fifo") ? CORO_FIFO : !strcmp(toks[3], "lifo") ? CORO_LIFO : CORO_PRIO;
    }
    d->name = xstrdup(name);
    R.ndecls++;
}

static void var_list(stmt *st, char **toks, int n, int line)
{
    st->vars = xcalloc((size_t)n, sizeof *st->vars);
    st->nvars = n;
    for (int i = 0; i < n; i++) add_ref(line, A_VAR, name_tok(toks[i], line), &st->vars[i]);
}

static void parse_args(stmt *st, char **toks, int n, int line)
{
    if (st->op == OP_LOG) return;
    if (st->op == OP_SHUTDOWN) {
        if ((n != 1 && n != 2) || (n == 2 && strcmp(toks[1], "immediate")))
            reject("line %d: usage: shutdown Q [immediate]", line);
        add_ref(line, A_QUEUE, name_tok(toks[0], line), &st->ref[0]);
        st->flag = n == 2;
        return;
    }
    if (st->op == OP_GATHER) {
        st->flag = n > 0 && !strcmp(toks[n - 1], "-x");
        var_list(st, toks, st->flag ? n - 1 : n, line);
        return;
    }
    if (st->op == OP_WAIT) {
        static const char *const modes[] = {"first", "exception", "all"};
        int mode = -1;
        if (n >= 2)
            for (int i = 0; i < 3; i++)
                if (!strcmp(toks[0], modes[i])) mode = i;
        if (mode < 0) reject("line %d: usage: wait first|exception|all MS|- VAR...", line);
        st->num[0] = mode == 0 ? CORO_FIRST_COMPLETED : mode == 1 ? CORO_FIRST_EXCEPTION : CORO_ALL_COMPLETED;
        st->num[1] = !strcmp(toks[1], "-") ? -1 : number(toks[1], line);
        var_list(st, toks + 2, n - 2, line);
        return;
    }
    if (n != OPS[st->op].nargs)
        reject("line %d: '%s' takes %d argument(s)", line, OPS[st->op].name, OPS[st->op].nargs);
    int ni = 0, ri = 0;
    for (int i = 0; i < n; i++) {
        int a = OPS[st->op].args[i];
        if (a == A_N) {
            st->num[ni++] = number(toks[i], line);
        } else if (a == A_ERR) {
            if (toks[i][0] != 'E' || toks[i][1] < '1' || toks[i][1] > '9' || toks[i][2])
                reject("line %d: unknown error '%s'", line, toks[i]);
            st->ref[ri++] = toks[i][1] - '0';
        } else {
            const char *nm = name_tok(toks[i], line);
            if (a == A_VARDEF) {
                int v = var_index(nm);
                R.vars[v].spawned = 1;
            }
            add_ref(line, a, nm, &st->ref[ri++]);
        }
    }
}

static char *join(char **toks, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(toks[i]) + 1;
    char *s = xrealloc(NULL, len + 1), *p = s;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(toks[i]);
        memcpy(p, toks[i], k);
        p += k;
        if (i + 1 < n) *p++ = ' ';
    }
    *p = 0;
    return s;
}

static void resolve(void)
{
    if (find_prog("main") < 0) reject("no 'def main'");
    for (int i = 0; i < nrefs; i++) {
        ref *r = &refs[i];
        if (r->kind == A_PROG) {
            if ((*r->slot = find_prog(r->name)) < 0) reject("line %d: unknown program '%s'", r->line, r->name);
        } else if (r->kind == A_VAR || r->kind == A_VARDEF) {
            if (find_prog(r->name) >= 0 || find_obj(r->name) >= 0)
                reject("line %d: '%s' is a program or object, not a task variable", r->line, r->name);
            int v = var_index(r->name);
            if (!R.vars[v].spawned) reject("line %d: unknown task '%s'", r->line, r->name);
            *r->slot = v;
        } else {
            int o = find_obj(r->name), k;
            if (o < 0) reject("line %d: unknown object '%s'", r->line, r->name);
            k = R.decls[o].kind;
            int ok = r->kind == A_LOCKISH ? (k == K_LOCK || k == K_SEM || k == K_BSEM || k == K_COND)
                   : r->kind == A_EVENT   ? k == K_EVENT
                   : r->kind == A_COND    ? k == K_COND
                   : r->kind == A_QUEUE   ? k == K_QUEUE
                                          : k == K_BARRIER;
            if (!ok) reject("line %d: '%s' is a %s", r->line, r->name, KINDS[k]);
            *r->slot = o;
        }
    }
}

/* Parses `text` (len bytes, may contain NULs: they are invalid). */
static void parse(const char *text, size_t len)
{
    struct open { body *b; int line; } *stack = NULL;
    int depth = 0, cap = 0, prog = -1;
    char *toks[MAX_TOKENS];
    size_t pos = 0;
    for (int lineno = 1; pos <= len; lineno++) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        R.line = xrealloc(R.line, end - pos + 1);
        char *line = R.line;
        memcpy(line, text + pos, end - pos);
        line[end - pos] = 0;
        if (memchr(text + pos, 0, end - pos)) {
            /* a NUL byte: invalid wherever it is, unless in a comment */
            const char *h = memchr(text + pos, '#', end - pos), *z = memchr(text + pos, 0, end - pos);
            if (!h || z < h) reject("line %d: invalid character", lineno);
        }
        pos = end + 1;
        int n = tokenize(line, toks, lineno);
        if (!n) continue;
        if (!depth) {
            if (!strcmp(toks[0], "def")) {
                if (n != 2) reject("line %d: usage: def PROG", lineno);
                const char *nm = name_tok(toks[1], lineno);
                if (find_prog(nm) >= 0 || find_obj(nm) >= 0) reject("line %d: '%s' declared twice", lineno, nm);
                GROW(R.progs, R.nprogs, R.capprogs);
                memset(&R.progs[R.nprogs], 0, sizeof R.progs[0]);
                R.progs[R.nprogs].name = xstrdup(nm);
                prog = R.nprogs++;
                GROW(stack, depth, cap);
                R.stack = stack;
                stack[depth].b = &R.progs[prog].body;
                stack[depth++].line = lineno;
                continue;
            }
            int is_decl = 0;
            for (int k = 0; k <= K_BARRIER; k++) is_decl |= !strcmp(toks[0], KINDS[k]);
            if (!is_decl) reject("line %d: declaration or 'def' expected", lineno);
            parse_decl(toks, n, lineno);
            continue;
        }
        if (n == 1 && !strcmp(toks[0], "end")) {
            depth--;
            continue;
        }
        int tried = !strcmp(toks[0], "try"), first = tried;
        if (tried && (n == 1 || !strcmp(toks[1], "try"))) reject("line %d: 'try' needs one statement", lineno);
        int op = -1;
        for (int i = 0; i < OP_COUNT; i++)
            if (!strcmp(toks[first], OPS[i].name)) op = i;
        if (op < 0) reject("line %d: unknown statement '%s'", lineno, toks[first]);
        body *b = stack[depth - 1].b;
        GROW(b->v, b->n, b->cap);
        stmt *st = xcalloc(1, sizeof *st);
        b->v[b->n++] = st;
        st->op = op;
        st->line = lineno;
        st->tried = tried;
        st->text = join(toks + first, n - first);
        parse_args(st, toks + first + 1, n - first - 1, lineno);
        if (op == OP_TIMEOUT || op == OP_GROUP) {
            GROW(stack, depth, cap);
            R.stack = stack;
            stack[depth].b = &st->body;
            stack[depth++].line = lineno;
            if (depth - 1 > R.progs[prog].blocks) R.progs[prog].blocks = depth - 1;
        }
    }
    if (depth) reject("line %d: missing 'end'", stack[depth - 1].line);
    free(R.line);
    free(R.stack);
    R.line = NULL;
    R.stack = NULL;
    resolve();
}

/* ---------------------------------------------------------------------- */
/* Output                                                                  */
/* ---------------------------------------------------------------------- */

static void emit(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) { /* long line: print it again into place */
        size_t need = R.outlen + (size_t)n + 2;
        if ((long)need > MAX_TRACE_BYTES + 2) reject("limit exceeded: trace above %ld bytes", MAX_TRACE_BYTES);
        if (need > R.outcap) {
            R.outcap = need * 2;
            R.out = xrealloc(R.out, R.outcap);
        }
        va_start(ap, fmt);
        vsnprintf(R.out + R.outlen, (size_t)n + 1, fmt, ap);
        va_end(ap);
    } else {
        if ((long)(R.outlen + (size_t)n + 1) > MAX_TRACE_BYTES)
            reject("limit exceeded: trace above %ld bytes", MAX_TRACE_BYTES);
        if (R.outlen + (size_t)n + 2 > R.outcap) {
            R.outcap = (R.outlen + (size_t)n + 2) * 2;
            R.out = xrealloc(R.out, R.outcap);
        }
        memcpy(R.out + R.outlen, buf, (size_t)n);
    }
    R.outlen += (size_t)n;
    R.out[R.outlen++] = '\n';
}


static void sput(str *b, const char *s);

/* The scratch string, emptied. It belongs to the run, so a limit that
 * abandons the run while a line is being built leaks nothing. */
static str *scratch(void)
{
    R.scratch.n = 0;
    sput(&R.scratch, "");
    return &R.scratch;
}

static void sput(str *b, const char *s)
{
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
    if ((long)b->n > MAX_TRACE_BYTES) reject("limit exceeded: error text too large");
}

static void put_error(str *b, int err)
{
    char num[32];
    if (err <= -ERR_GROUP_BASE && err > -2 * ERR_GROUP_BASE) {
        gerror *g = &R.groups[-err - ERR_GROUP_BASE];
        sput(b, "group(");
        for (int i = 0; i < g->n; i++) {
            if (i) sput(b, ",");
            put_error(b, g->v[i]); /* depth bounded by MAX_DEPTH nesting */
        }
        sput(b, ")");
        return;
    }
    if (err == CORO_ECANCELED) sput(b, "cancelled");
    else if (err == CORO_ETIMEDOUT) sput(b, "timeout");
    else if (err == ERR_FULL) sput(b, "full");
    else if (err == ERR_EMPTY) sput(b, "empty");
    else if (err == CORO_ESHUTDOWN) sput(b, "shutdown");
    else if (err == CORO_EBROKEN) sput(b, "broken");
    else if (err == CORO_EINVAL || err == CORO_EDEADLK) sput(b, "invalid");
    else if (err <= CORO_EUSER(1) && err >= CORO_EUSER(9)) {
        snprintf(num, sizeof num, "E%d", -err - CORO_EUSER_BASE);
        sput(b, num);
    } else {
        reject("internal error: unexpected error code %d", err);
    }
}

static void put_value(str *b, int v)
{
    char num[32];
    if (v < 0) {
        sput(b, "!");
        put_error(b, v);
    } else if (v == VAL_NONE) {
        sput(b, "none");
    } else {
        snprintf(num, sizeof num, "%d", v);
        sput(b, num);
    }
}

static const char *current_name(void)
{
    return ((itask *)(void *)coro_current_task(&R.L))->name;
}

/* `<ms> <task> <text>[ = value | !error]` */
static void trace_text(const char *text, const char *sep, const char *rest)
{
    emit("%ld %s %s%s%s", R.now, current_name(), text, sep, rest);
}

static void trace_value(const stmt *st, int v)
{
    str *b = scratch();
    put_value(b, v);
    trace_text(st->text, " = ", b->s);
}

static void trace_fail(const stmt *st, int err)
{
    str *b = scratch();
    sput(b, "!");
    put_error(b, err);
    trace_text(st->text, " ", b->s);
}

/* ---------------------------------------------------------------------- */
/* The clock: virtual milliseconds, with the MAX_CLOCK limit               */
/* ---------------------------------------------------------------------- */

static int64_t clock_now(coro_backend *b)
{
    (void)b;
    return R.now;
}

static void clock_set(long when)
{
    if (when > MAX_CLOCK) reject("limit exceeded: virtual clock beyond %ld ms", MAX_CLOCK);
    if (when > R.now) R.now = when;
}

static int clock_poll(coro_backend *b, coro_loop *L, int64_t timeout)
{
    (void)b;
    (void)L;
    if (timeout < 0) return CORO_EDEADLK;
    if (timeout > 0) clock_set(R.now + (long)(timeout > MAX_CLOCK ? MAX_CLOCK + 1 : timeout));
    return 0;
}

static void on_report(coro_loop *L, const coro_report *r, void *arg)
{
    (void)L;
    (void)arg;
    if (r->kind == CORO_REPORT_CANCEL_CYCLE)
        reject("limit exceeded: cancel() forwarded around an await cycle");
}

/* ---------------------------------------------------------------------- */
/* Objects, tasks                                                          */
/* ---------------------------------------------------------------------- */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* The object, initialised on first use (queues allocate lazily). */
static object *obj(int i)
{
    object *o = &R.objects[i];
    objdecl *d = &R.decls[i];
    if (o->ready) return o;
    o->ready = 1;
    o->kind = d->kind;
    switch (d->kind) {
    case K_LOCK: coro_lock_init(&o->u.lock); break;
    case K_EVENT: coro_event_init(&o->u.event); break;
    case K_SEM: coro_sem_init(&o->u.sem, (int)d->n); break;
    case K_BSEM: coro_bsem_init(&o->u.sem, (int)d->n); break;
    case K_COND: coro_cond_init(&o->u.cond, NULL); break;
    case K_BARRIER: coro_barrier_init(&o->u.barrier, (int)d->n); break;
    default: {
        /* at most MAX_STATEMENTS items can ever be in a queue */
        long cap = d->max > 0 && d->max < MAX_STATEMENTS + 1 ? d->max : MAX_STATEMENTS + 1;
        long max = d->max > cap ? cap : d->max;
        o->buf = xcalloc((size_t)cap, sizeof *o->buf);
        coro_queue_init(&o->u.queue, (int)d->qkind, o->buf, sizeof *o->buf, (size_t)cap,
                        (size_t)max, cmp_ll);
    }
    }
    return o;
}

static coro_lock *lockish(object *o)
{
    return o->kind == K_COND ? coro_cond_lock(&o->u.cond) : &o->u.lock;
}

/* The task bound to a variable, or NULL (the statement fails: invalid). */
static itask *bound(int var)
{
    return R.bound[var];
}

static int task_value(itask *t)
{
    return coro_task_result(&t->gt.task);
}

/* ---------------------------------------------------------------------- */
/* Program frames                                                          */
/* ---------------------------------------------------------------------- */

typedef struct blk {
    const stmt *st;
    int idx;
    coro_timeout tm;
    coro_group g;
    int *errs;
} blk;

struct pframe {
    coro_frame co;
    pframe *next_free;
    const program *prog;
    int idx, depth;       /* next statement of the top body; env depth */
    blk *blks;
    int nblk, capblk;
    const stmt *cur;      /* the statement being executed */
    int rc, exit_rc, returning, retval, i;
    pframe *child;        /* `call` */
    itask *target;        /* the task a statement works on */
    /* state of the statement in progress (one at a time) */
    union {
        coro_lock_op lock;
        coro_sem_op sem;
        coro_event_op event;
        coro_cond_op cond;
        coro_queue_op queue;
        coro_barrier_op barrier;
        coro_wait wait;
        coro_wait_for wait_for;
        coro_gather gather;
        coro_shield shield;
    } op;
    coro_future *fut;
    coro_future **futs;
    void *items;
    long long item;
};

static int prog_fn(coro_ctx *c);

static pframe *frame_new(int prog, int depth)
{
    pframe *f = R.free_frames;
    if (f) {
        R.free_frames = f->next_free;
    } else {
        GROW(R.frames, R.nframes, R.capframes);
        f = xcalloc(1, sizeof *f);
        R.frames[R.nframes++] = f;
    }
    blk *blks = f->blks;
    int capblk = f->capblk;
    memset(f, 0, sizeof *f);
    f->blks = blks;
    f->capblk = capblk;
    f->prog = &R.progs[prog];
    f->depth = depth;
    if (f->capblk < f->prog->blocks) {
        f->blks = xrealloc(f->blks, (size_t)f->prog->blocks * sizeof *f->blks);
        f->capblk = f->prog->blocks;
    }
    coro_frame_init(&f->co, prog_fn);
    return f;
}

static void frame_free(pframe *f)
{
    f->next_free = R.free_frames;
    R.free_frames = f;
}

/* The next statement of the innermost open body, or NULL at its end. */
static const stmt *fetch(pframe *f)
{
    if (f->nblk) {
        blk *b = &f->blks[f->nblk - 1];
        return b->idx < b->st->body.n ? b->st->body.v[b->idx++] : NULL;
    }
    return f->idx < f->prog->body.n ? f->prog->body.v[f->idx++] : NULL;
}

/* Env.enter: a nested call or block body. */
static void enter(pframe *f)
{
    if (f->depth + f->nblk + 1 > MAX_DEPTH) reject("limit exceeded: nesting deeper than %d", MAX_DEPTH);
}

/* The innermost group block of this body (lexical), or NULL. */
static coro_group *env_group(pframe *f)
{
    for (int i = f->nblk - 1; i >= 0; i--)
        if (f->blks[i].st->op == OP_GROUP) return &f->blks[i].g;
    return NULL;
}

static itask *spawn(pframe *f, int var, int prog)
{
    itask *t = xcalloc(1, sizeof *t);
    coro_group *g = env_group(f);
    t->name = R.vars[var].name;
    t->frame = frame_new(prog, 0);
    int rc = g ? coro_group_spawn(&R.L, g, &t->gt, &t->frame->co)
               : coro_spawn(&R.L, &t->gt.task, &t->frame->co);
    if (rc < 0) {
        frame_free(t->frame);
        free(t);
        return NULL;
    }
    R.bound[var] = t;
    R.tasks[R.ntasks++] = t;
    if (R.ntasks > MAX_TASKS) reject("limit exceeded: more than %d tasks", MAX_TASKS);
    return t;
}

/* A group's errors become one composite error code. */
static int group_error(blk *b)
{
    GROW(R.groups, R.ngroups, R.capgroups);
    gerror *g = &R.groups[R.ngroups];
    g->n = (int)coro_group_error_count(&b->g);
    g->v = b->errs;
    b->errs = NULL;
    return -(ERR_GROUP_BASE + R.ngroups++);
}

/* Synchronous statements: the outcome (a value >= 0 to trace, VAL_NONE for
 * nothing to trace, or an error). */
static int run_sync(pframe *f, const stmt *st, int *traced)
{
    itask *t;
    object *o;
    *traced = 0;
    switch (st->op) {
    case OP_LOG: trace_text(st->text, "", ""); return 0;
    case OP_BLOCK: clock_set(R.now + st->num[0]); return 0;
    case OP_SPAWN: return spawn(f, st->ref[0], st->ref[1]) ? 0 : CORO_EINVAL;
    case OP_CANCEL:
        if (!(t = bound(st->ref[0]))) return CORO_EINVAL;
        *traced = 1;
        return coro_task_cancel(&R.L, &t->gt.task);
    case OP_STATE: { /* an error is a value here: `= !cancelled` */
        if (!(t = bound(st->ref[0]))) return CORO_EINVAL;
        if (!coro_task_done(&t->gt.task)) {
            trace_text(st->text, " = ", "pending");
        } else {
            str *b = scratch();
            put_value(b, task_value(t));
            trace_text(st->text, " = ", b->s);
        }
        return 0;
    }
    case OP_RAISE: return CORO_EUSER(st->ref[0]);
    case OP_RELEASE:
        o = obj(st->ref[0]);
        return o->kind == K_SEM || o->kind == K_BSEM ? coro_sem_release(&R.L, &o->u.sem)
                                                     : coro_lock_release(&R.L, lockish(o));
    case OP_LOCKED:
        o = obj(st->ref[0]);
        *traced = 1;
        return o->kind == K_SEM || o->kind == K_BSEM ? coro_sem_locked(&o->u.sem)
                                                     : coro_lock_locked(lockish(o));
    case OP_SET: coro_event_set(&R.L, &obj(st->ref[0])->u.event); return 0;
    case OP_CLEAR: coro_event_clear(&obj(st->ref[0])->u.event); return 0;
    case OP_NOTIFY:
        return coro_cond_notify(&R.L, &obj(st->ref[0])->u.cond, (unsigned)st->num[0]);
    case OP_NOTIFY_ALL: return coro_cond_notify_all(&R.L, &obj(st->ref[0])->u.cond);
    case OP_PUT_NOWAIT: {
        long long v = st->num[0];
        int rc = coro_queue_put_nowait(&R.L, &obj(st->ref[0])->u.queue, &v);
        return rc == CORO_EAGAIN ? ERR_FULL : rc;
    }
    case OP_GET_NOWAIT: {
        long long v = 0;
        int rc = coro_queue_get_nowait(&R.L, &obj(st->ref[0])->u.queue, &v);
        if (rc < 0) return rc == CORO_EAGAIN ? ERR_EMPTY : rc;
        *traced = 1;
        return (int)v;
    }
    case OP_TASK_DONE: return coro_queue_task_done(&R.L, &obj(st->ref[0])->u.queue);
    case OP_QSIZE: *traced = 1; return (int)coro_queue_qsize(&obj(st->ref[0])->u.queue);
    case OP_SHUTDOWN: coro_queue_shutdown(&R.L, &obj(st->ref[0])->u.queue, st->flag); return 0;
    case OP_CANCELLING: *traced = 1; return coro_task_cancelling(coro_current_task(&R.L));
    case OP_UNCANCEL: *traced = 1; return coro_task_uncancel(coro_current_task(&R.L));
    case OP_ALL_TASKS: {
        str *b = scratch();
        sput(b, "[");
        for (int i = 0, n = 0; i < R.ntasks; i++) {
            if (coro_task_done(&R.tasks[i]->gt.task)) continue;
            if (n++) sput(b, ",");
            sput(b, R.tasks[i]->name);
        }
        sput(b, "]");
        trace_text(st->text, " = ", b->s);
        return 0;
    }
    default: return CORO_EINVAL;
    }
}

static int is_sync(int op)
{
    return op == OP_LOG || op == OP_BLOCK || op == OP_SPAWN || op == OP_CANCEL || op == OP_STATE ||
           op == OP_RAISE || op == OP_RELEASE || op == OP_LOCKED || op == OP_SET || op == OP_CLEAR ||
           op == OP_NOTIFY || op == OP_NOTIFY_ALL || op == OP_PUT_NOWAIT || op == OP_GET_NOWAIT ||
           op == OP_TASK_DONE || op == OP_QSIZE || op == OP_SHUTDOWN || op == OP_CANCELLING ||
           op == OP_UNCANCEL || op == OP_ALL_TASKS;
}

/* Looks up every VAR of a gather/wait list (the first unbound: invalid)
 * into f->futs; wait keeps each distinct VAR once. Returns the count. */
static int collect(pframe *f, const stmt *st, int distinct)
{
    int n = 0;
    f->futs = xrealloc(f->futs, (size_t)(st->nvars ? st->nvars : 1) * sizeof *f->futs);
    f->items = NULL;
    for (int i = 0; i < st->nvars; i++) {
        int dup = 0;
        if (distinct)
            for (int j = 0; j < i; j++) dup |= st->vars[j] == st->vars[i];
        if (dup) continue;
        itask *t = bound(st->vars[i]);
        if (!t) return -1;
        f->futs[n++] = coro_task_future(&t->gt.task);
    }
    return n;
}

/* The value list of a gather. */
static void trace_gather(pframe *f, const stmt *st)
{
    str *b = scratch();
    sput(b, "[");
    for (int i = 0; i < st->nvars; i++) {
        if (i) sput(b, ",");
        put_value(b, coro_gather_result(&f->op.gather, (unsigned)i));
    }
    sput(b, "]");
    trace_text(st->text, " = ", b->s);
}

static const char *fut_name(coro_future *fu)
{
    return ((itask *)(void *)((char *)fu - offsetof(coro_task, fut)))->name;
}

static void trace_wait(pframe *f, const stmt *st, int n)
{
    str *b = scratch();
    sput(b, "done[");
    for (int i = 0, k = 0; i < n; i++)
        if (coro_future_done(f->futs[i])) {
            if (k++) sput(b, ",");
            sput(b, fut_name(f->futs[i]));
        }
    sput(b, "] pending[");
    for (int i = 0, k = 0; i < n; i++)
        if (!coro_future_done(f->futs[i])) {
            if (k++) sput(b, ",");
            sput(b, fut_name(f->futs[i]));
        }
    sput(b, "]");
    trace_text(st->text, " = ", b->s);
}

/* One program execution: statements in order, blocks, failures, return. */
static int prog_fn(coro_ctx *c)
{
    pframe *f = CORO_SELF(c, pframe);
    const stmt *st;
    CORO_BEGIN(c);
    for (;;) {
        st = f->cur = fetch(f);
        if (!st) { /* the innermost body ended */
            if (!f->nblk) CORO_RETURN(c, VAL_NONE);
            f->exit_rc = 0;
            goto exit_block;
        }
        if (++R.statements > MAX_STATEMENTS)
            reject("limit exceeded: more than %ld statements", MAX_STATEMENTS);
        f->rc = 0;
        if (is_sync(st->op)) {
            int traced;
            f->rc = run_sync(f, st, &traced);
            if (traced && f->rc >= 0) {
                if (st->op == OP_CANCEL || st->op == OP_LOCKED)
                    trace_text(st->text, " = ", f->rc ? "true" : "false");
                else
                    trace_value(st, f->rc);
            }
        } else if (st->op == OP_SLEEP) {
            CORO_SLEEP(c, CORO_NS(st->num[0]));
            f->rc = c->rc;
        } else if (st->op == OP_YIELD) {
            CORO_YIELD(c);
            f->rc = c->rc;
        } else if (st->op == OP_RETURN) {
            f->returning = 1;
            f->retval = (int)st->num[0];
            if (!f->nblk) CORO_RETURN(c, f->retval);
            f->exit_rc = 0;
            goto exit_block;
        } else if (st->op == OP_CALL) {
            enter(f);
            f->child = frame_new(st->ref[0], f->depth + f->nblk + 1);
            CORO_AWAIT(c, &f->child->co);
            f->rc = c->rc;
            frame_free(f->child);
            f->child = NULL;
            if (f->rc >= 0) trace_value(f->cur, f->rc);
        } else if (st->op == OP_AWAIT || st->op == OP_WAIT_FOR || st->op == OP_SHIELD) {
            if (!(f->target = bound(st->ref[0]))) {
                f->rc = CORO_EINVAL;
            } else if (st->op == OP_AWAIT) {
                CORO_AWAIT_TASK(c, &f->target->gt.task);
                f->rc = c->rc;
            } else if (st->op == OP_WAIT_FOR) {
                CORO_AWAIT(c, coro_wait_for_init(&f->op.wait_for, coro_task_future(&f->target->gt.task),
                                                 CORO_NS(f->cur->num[0])));
                f->rc = c->rc;
            } else {
                f->fut = coro_shield_start(&R.L, &f->op.shield, coro_task_future(&f->target->gt.task));
                CORO_AWAIT_FUTURE(c, f->fut);
                f->rc = c->rc;
                if (f->rc >= 0 && f->fut != coro_task_future(&f->target->gt.task))
                    f->rc = (int)coro_future_value(f->fut);
            }
            if (f->rc >= 0) trace_value(f->cur, f->rc);
        } else if (st->op == OP_GATHER) {
            f->i = collect(f, st, 0);
            if (f->i < 0) {
                f->rc = CORO_EINVAL;
            } else {
                f->items = xcalloc((size_t)(f->i ? f->i : 1), sizeof(coro_gather_item));
                coro_gather_start(&R.L, &f->op.gather, (coro_gather_item *)f->items, f->futs,
                                  (unsigned)f->i, st->flag ? CORO_RETURN_EXCEPTIONS : 0);
                CORO_AWAIT_GATHER(c, &f->op.gather);
                f->rc = c->rc;
                if (f->rc >= 0) trace_gather(f, f->cur);
                free(f->items);
                f->items = NULL;
            }
        } else if (st->op == OP_WAIT) {
            f->i = collect(f, st, 1);
            if (f->i < 0) {
                f->rc = CORO_EINVAL;
            } else {
                f->items = xcalloc((size_t)(f->i ? f->i : 1), sizeof(coro_wait_item));
                CORO_AWAIT(c, coro_wait_init(&f->op.wait, (coro_wait_item *)f->items, f->futs,
                                             (unsigned)f->i, (int)f->cur->num[0],
                                             f->cur->num[1] < 0 ? CORO_NEVER : CORO_NS(f->cur->num[1])));
                f->rc = c->rc;
                if (f->rc >= 0) trace_wait(f, f->cur, f->i);
                free(f->items);
                f->items = NULL;
            }
        } else if (st->op == OP_TIMEOUT || st->op == OP_GROUP) {
            enter(f);
            {
                blk *b = &f->blks[f->nblk++];
                memset(b, 0, sizeof *b);
                b->st = st;
                if (st->op == OP_TIMEOUT) {
                    coro_timeout_enter(c, &b->tm, CORO_NS(st->num[0]));
                } else {
                    b->errs = xcalloc(MAX_TASKS + 2, sizeof *b->errs);
                    coro_group_enter(c, &b->g, b->errs, MAX_TASKS + 2);
                }
            }
            continue;
        } else if (st->op == OP_ACQUIRE) {
            object *o = obj(st->ref[0]);
            if (o->kind == K_SEM || o->kind == K_BSEM)
                CORO_AWAIT(c, coro_sem_acquire(&f->op.sem, &obj(f->cur->ref[0])->u.sem));
            else
                CORO_AWAIT(c, coro_lock_acquire(&f->op.lock, lockish(obj(f->cur->ref[0]))));
            f->rc = c->rc;
        } else if (st->op == OP_WAIT_EVENT) {
            CORO_AWAIT(c, coro_event_wait(&f->op.event, &obj(st->ref[0])->u.event));
            f->rc = c->rc;
        } else if (st->op == OP_CWAIT) {
            CORO_AWAIT(c, coro_cond_wait(&f->op.cond, &obj(st->ref[0])->u.cond));
            f->rc = c->rc;
        } else if (st->op == OP_PUT) {
            f->item = st->num[0];
            CORO_AWAIT(c, coro_queue_put(&f->op.queue, &obj(st->ref[0])->u.queue, &f->item));
            f->rc = c->rc;
        } else if (st->op == OP_GET) {
            CORO_AWAIT(c, coro_queue_get(&f->op.queue, &obj(st->ref[0])->u.queue, &f->item));
            f->rc = c->rc;
            if (f->rc >= 0) trace_value(f->cur, (int)f->item);
        } else if (st->op == OP_JOIN) {
            CORO_AWAIT(c, coro_queue_join(&f->op.event, &obj(st->ref[0])->u.queue));
            f->rc = c->rc;
        } else if (st->op == OP_BWAIT || st->op == OP_BABORT || st->op == OP_BRESET) {
            coro_barrier *b = &obj(st->ref[0])->u.barrier;
            CORO_AWAIT(c, st->op == OP_BWAIT   ? coro_barrier_wait(&f->op.barrier, b)
                          : st->op == OP_BABORT ? coro_barrier_abort(&f->op.barrier, b)
                                                : coro_barrier_reset(&f->op.barrier, b));
            f->rc = c->rc;
            if (f->rc >= 0 && f->cur->op == OP_BWAIT) trace_value(f->cur, f->rc);
        }
        if (f->rc >= 0) continue;
        /* the statement failed: trace it, then drop (try) or propagate */
        trace_fail(f->cur, f->rc);
        if (f->cur->tried) continue;
        if (!f->nblk) CORO_FAIL(c, f->rc);
        f->exit_rc = f->rc;
    exit_block:
        /* leave the innermost block with exit_rc; its statement's outcome
         * then propagates the same way, out to the program */
        for (;;) {
            if (f->blks[f->nblk - 1].st->op == OP_TIMEOUT) {
                f->rc = coro_timeout_exit(c, &f->blks[f->nblk - 1].tm, f->exit_rc);
            } else {
                CORO_AWAIT(c, coro_group_exit(&f->blks[f->nblk - 1].g, f->exit_rc));
                f->rc = c->rc == CORO_EGROUP ? group_error(&f->blks[f->nblk - 1]) : c->rc;
            }
            f->cur = f->blks[f->nblk - 1].st;
            free(f->blks[f->nblk - 1].errs);
            f->nblk--;
            if (f->rc >= 0) {
                if (!f->returning) break;
                if (!f->nblk) CORO_RETURN(c, f->retval);
                f->exit_rc = 0;
                continue;
            }
            f->returning = 0;
            trace_fail(f->cur, f->rc);
            if (f->cur->tried) break;
            if (!f->nblk) CORO_FAIL(c, f->rc);
            f->exit_rc = f->rc;
        }
    }
    CORO_END(c);
}

/* ---------------------------------------------------------------------- */
/* The run                                                                 */
/* ---------------------------------------------------------------------- */

/* Frees a body and everything under it, children first. */
static void free_bodies(body *top)
{
    body **all = NULL;
    int na = 0, capa = 0;
    GROW(all, na, capa);
    all[na++] = top;
    for (int k = 0; k < na; k++)
        for (int i = 0; i < all[k]->n; i++)
            if (all[k]->v[i]->body.v) {
                GROW(all, na, capa);
                all[na++] = &all[k]->v[i]->body;
            }
    for (int k = na - 1; k >= 0; k--) {
        for (int i = 0; i < all[k]->n; i++) {
            stmt *st = all[k]->v[i];
            free(st->text);
            free(st->vars);
            free(st);
        }
        free(all[k]->v);
    }
    free(all);
}

static void free_all(void)
{
    for (int p = 0; p < R.nprogs; p++) {
        free_bodies(&R.progs[p].body);
        free(R.progs[p].name);
    }
    free(R.progs);
    for (int i = 0; i < R.ndecls; i++) free(R.decls[i].name);
    free(R.decls);
    for (int i = 0; i < R.nvars; i++) free(R.vars[i].name);
    free(R.vars);
    for (int i = 0; i < nrefs; i++) free(refs[i].name);
    free(refs);
    refs = NULL;
    nrefs = caprefs = 0;
    if (R.objects)
        for (int i = 0; i < R.ndecls; i++) free(R.objects[i].buf);
    free(R.objects);
    if (R.tasks)
        for (int i = 0; i < R.ntasks; i++) free(R.tasks[i]);
    free(R.tasks);
    free(R.bound);
    for (int i = 0; i < R.nframes; i++) {
        pframe *f = R.frames[i];
        for (int b = 0; b < f->nblk; b++) free(f->blks[b].errs);
        free(f->blks);
        free(f->futs);
        free(f->items);
        free(f);
    }
    free(R.frames);
    for (int i = 0; i < R.ngroups; i++) free(R.groups[i].v);
    free(R.groups);
    free(R.out);
    free(R.line);
    free(R.stack);
    free(R.scratch.s);
    memset(&R, 0, sizeof R);
}

static void final_lines(void)
{
    for (int i = 0; i < R.ntasks; i++) {
        itask *t = R.tasks[i];
        if (!coro_task_done(&t->gt.task)) {
            emit("final %s = pending", t->name);
        } else {
            str *b = scratch();
            put_value(b, task_value(t));
            emit("final %s = %s", t->name, b->s);
        }
    }
}

/* Runs a scenario. Returns 0 with the trace in *out (malloc'd, *len
 * bytes), or 2 with a message in msg. */
int scenario_run(const char *text, size_t len, char **out, size_t *outlen, char *msg, size_t msglen);
int scenario_run(const char *text, size_t len, char **out, size_t *outlen, char *msg, size_t msglen)
{
    volatile int status = 0;
    memset(&R, 0, sizeof R);
    *out = NULL;
    *outlen = 0;
    if (setjmp(R.abort)) {
        snprintf(msg, msglen, "scenario: %s\n", R.msg);
        free_all();
        return 2;
    }
    parse(text, len);
    R.clock.now = clock_now;
    R.clock.poll = clock_poll;
    R.clock.close = NULL;
    R.clock.quiet = 1;
    coro_loop_init(&R.L, &R.clock);
    coro_loop_set_report(&R.L, on_report, NULL);
    R.objects = xcalloc((size_t)R.ndecls, sizeof *R.objects);
    R.tasks = xcalloc(MAX_TASKS + 1, sizeof *R.tasks);
    R.bound = xcalloc((size_t)R.nvars, sizeof *R.bound);
    itask *m = xcalloc(1, sizeof *m);
    m->name = "main";
    m->frame = frame_new(find_prog("main"), 0);
    R.tasks[R.ntasks++] = m;
    int rc = coro_run(&R.L, &m->gt.task, &m->frame->co);
    if (rc == CORO_EDEADLK && coro_loop_deadlocked(&R.L)) emit("%ld - deadlock", R.now);
    final_lines();
    coro_loop_set_report(&R.L, NULL, NULL);
    coro_loop_close(&R.L);
    *out = R.out;
    *outlen = R.outlen;
    R.out = NULL;
    free_all();
    return status;
}

#ifndef SCENARIO_NO_MAIN
int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: scenario FILE.co\n", stderr);
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) {
        perror(argv[1]);
        return 2;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len + 4096 > cap) {
            cap = (len + 4096) * 2;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(fp);
                fputs("scenario: out of memory\n", stderr);
                return 2;
            }
            text = t;
        }
        n = fread(text + len, 1, cap - len, fp);
        len += n;
    } while (n > 0);
    fclose(fp);
    char *out, msg[512];
    size_t outlen;
    int status = scenario_run(text, len, &out, &outlen, msg, sizeof msg);
    free(text);
    if (status) {
        fputs(msg, stderr);
        return status;
    }
    fwrite(out, 1, outlen, stdout);
    free(out);
    return 0;
}
#endif
