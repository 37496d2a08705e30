/* iospec compiled trace checker: the model-independent runtime.
 *
 * `properties/compiled/cgen.py` generates C for the watched models (their actions and their
 * incremental invariant checks, from the same expressions `model/core/sparse.py` compiles to
 * Python) and appends it to this file.  This part holds what does not depend on a model: the
 * sparse state (function cells with value indexes, as in sparse.py), candidate sets, identity
 * interning, and a strict parser for trace lines (docs/trace-format.md).
 *
 * The engine answers "clean" or "stop at line N": anything it does not handle exactly as the
 * Python engine does (an escape in a string it must read, a float, a huge integer, non-ASCII
 * bytes, an evaluation error, a value outside its tables) is a stop with kind BAIL, and the
 * Python engine re-checks the trace and produces the report.  It never writes error texts.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int64_t i64;

/* an EvaluationError (".some of none") since the last catch point */
static int g_err;
/* something the compiled engine does not decide: the Python engine must */
static int g_bail;
/* cells changed in the current model step carry this stamp (sparse.py's OLD / CH sets) */
static uint32_t g_stamp = 1;

static i64 rt_unwrap(i64 v) {
    if (v == -1) g_err = 1;
    return v;
}

/* ---------------------------------------------------------------- vectors */
typedef struct {
    int32_t *a;
    int32_t n, cap;
} vec;

static void vec_push(vec *v, i64 x) {
    if (x < INT32_MIN || x > INT32_MAX) { g_bail = 1; return; }
    if (v->n == v->cap) {
        int32_t c = v->cap ? v->cap * 2 : 4;
        int32_t *na = realloc(v->a, (size_t)c * sizeof *na);
        if (!na) { g_bail = 1; return; }
        v->a = na;
        v->cap = c;
    }
    v->a[v->n++] = (int32_t)x;
}

/* ---------------------------------------------------------------- candidate sets */
/* a == NULL: the range 0..n-1 (sparse.py's `range(total)`); else n values */
typedef struct {
    const int32_t *a;
    i64 n;
} cset;
#define CS_AT(s, i) ((s).a ? (i64)(s).a[i] : (i64)(i))

static int32_t cs_none[1];
static int32_t *arena;
static i64 arena_top, arena_cap;

static int32_t *arena_alloc(i64 n) {
    if (!arena) {
        arena_cap = (i64)1 << 24;
        arena = malloc((size_t)arena_cap * sizeof *arena);
        if (!arena) { g_bail = 1; return NULL; }
    }
    if (arena_top + n > arena_cap) { g_bail = 1; return NULL; }
    int32_t *p = arena + arena_top;
    arena_top += n;
    return p;
}

static cset cs_empty(void) { cset s = {cs_none, 0}; return s; }
static cset cs_range(i64 n) { cset s = {NULL, n}; return s; }

static cset cs_one(i64 v) {
    if (v < 0) return cs_empty();
    int32_t *p = arena_alloc(1);
    if (!p) return cs_empty();
    p[0] = (int32_t)v;
    cset s = {p, 1};
    return s;
}

static cset cs_two(i64 a, i64 b) {
    int32_t *p = arena_alloc(2);
    if (!p) return cs_empty();
    i64 n = 0;
    if (a >= 0) p[n++] = (int32_t)a;
    if (b >= 0 && b != a) p[n++] = (int32_t)b;
    cset s = {p, n};
    return s;
}

/* two lists concatenated (duplicates only cost time: every use is a superset) */
static cset cs_cat(const int32_t *a, i64 na, const int32_t *b, i64 nb) {
    if (nb == 0) { cset s = {na ? a : cs_none, na}; return s; }
    if (na == 0) { cset s = {b, nb}; return s; }
    int32_t *p = arena_alloc(na + nb);
    if (!p) return cs_empty();
    memcpy(p, a, (size_t)na * sizeof *p);
    memcpy(p + na, b, (size_t)nb * sizeof *p);
    cset s = {p, na + nb};
    return s;
}

/* sparse.py's _union: a range absorbs everything */
static cset cs_union(cset x, cset y) {
    if (!x.a) return x;
    if (!y.a) return y;
    return cs_cat(x.a, x.n, y.a, y.n);
}

/* sparse.py's _smallest (min keeps the first of equals) */
static cset cs_min(cset x, cset y) { return y.n < x.n ? y : x; }

/* ---------------------------------------------------------------- hash map u64 -> int32 (no deletion) */
typedef struct {
    uint64_t *k;
    int32_t *v;
    i64 cap, n;
} hmap;

static inline uint64_t hmix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint64_t pack2(i64 a, i64 b) { return ((uint64_t)(uint32_t)(int32_t)a << 32) | (uint32_t)(int32_t)b; }

static int32_t hm_get(const hmap *m, uint64_t key) {
    if (!m->cap) return -1;
    i64 mask = m->cap - 1, i = (i64)(hmix(key) & (uint64_t)mask);
    while (m->v[i] >= 0) {
        if (m->k[i] == key) return m->v[i];
        i = (i + 1) & mask;
    }
    return -1;
}

static void hm_put(hmap *m, uint64_t key, int32_t val);

static void hm_grow(hmap *m) {
    hmap old = *m;
    i64 cap = old.cap ? old.cap * 2 : 64;
    m->k = malloc((size_t)cap * sizeof *m->k);
    m->v = malloc((size_t)cap * sizeof *m->v);
    if (!m->k || !m->v) { g_bail = 1; *m = old; return; }
    memset(m->v, 0xff, (size_t)cap * sizeof *m->v);
    m->cap = cap;
    m->n = 0;
    for (i64 i = 0; i < old.cap; i++)
        if (old.v[i] >= 0) hm_put(m, old.k[i], old.v[i]);
    free(old.k);
    free(old.v);
}

static void hm_put(hmap *m, uint64_t key, int32_t val) {
    if ((m->n + 1) * 2 > m->cap) hm_grow(m);
    if (g_bail && !m->cap) return;
    i64 mask = m->cap - 1, i = (i64)(hmix(key) & (uint64_t)mask);
    while (m->v[i] >= 0) {
        if (m->k[i] == key) { m->v[i] = val; return; }
        i = (i + 1) & mask;
    }
    m->k[i] = key;
    m->v[i] = val;
    m->n++;
}

/* ---------------------------------------------------------------- unary functions */
/* cells 0..cap-1 (unseen identities hold the default), value index (value -> keys holding it,
 * non-default values only), the non-default keys, the keys changed in this step with their old value */
typedef struct {
    i64 dflt, cap;
    i64 *val, *old;
    uint32_t *stamp;
    int32_t *ipos, *kpos;
    vec *idx;
    i64 nidx;
    vec keys, ch;
} ufunc;

static inline i64 uf_get(const ufunc *f, i64 k) { return (k >= 0 && k < f->cap) ? f->val[k] : f->dflt; }
static inline i64 uf_pre(const ufunc *f, i64 k) {
    if (k < 0 || k >= f->cap) return f->dflt;
    return f->stamp[k] == g_stamp ? f->old[k] : f->val[k];
}

static void uf_grow(ufunc *f, i64 need) {
    i64 cap = f->cap ? f->cap : 16;
    while (cap <= need) cap *= 2;
    i64 *val = realloc(f->val, (size_t)cap * sizeof *val);
    i64 *old = realloc(f->old, (size_t)cap * sizeof *old);
    uint32_t *st = realloc(f->stamp, (size_t)cap * sizeof *st);
    int32_t *ip = realloc(f->ipos, (size_t)cap * sizeof *ip);
    int32_t *kp = realloc(f->kpos, (size_t)cap * sizeof *kp);
    if (val) f->val = val;
    if (old) f->old = old;
    if (st) f->stamp = st;
    if (ip) f->ipos = ip;
    if (kp) f->kpos = kp;
    if (!val || !old || !st || !ip || !kp) { g_bail = 1; return; }
    for (i64 i = f->cap; i < cap; i++) { val[i] = f->dflt; old[i] = f->dflt; st[i] = 0; ip[i] = kp[i] = -1; }
    f->cap = cap;
}

/* the bucket of value v (v >= -1), created on demand */
static vec *val_bucket(vec **idx, i64 *nidx, i64 v) {
    if (v < -1 || v > ((i64)1 << 26)) { g_bail = 1; return NULL; }
    i64 slot = v + 1;
    if (slot >= *nidx) {
        i64 n = *nidx ? *nidx : 8;
        while (n <= slot) n *= 2;
        vec *ni = realloc(*idx, (size_t)n * sizeof *ni);
        if (!ni) { g_bail = 1; return NULL; }
        memset(ni + *nidx, 0, (size_t)(n - *nidx) * sizeof *ni);
        *idx = ni;
        *nidx = n;
    }
    return &(*idx)[slot];
}

static cset uf_bucket_set(const ufunc *f, i64 v) {
    if (v < -1 || v + 1 >= f->nidx) return cs_empty();
    const vec *b = &f->idx[v + 1];
    cset s = {b->n ? b->a : cs_none, b->n};
    return s;
}

static void uf_set(ufunc *f, i64 k, i64 v) {
    if (k < 0 || k > ((i64)1 << 30)) { g_bail = 1; return; }
    if (k >= f->cap) { uf_grow(f, k); if (g_bail) return; }
    i64 old = f->val[k];
    if (old == v) return;
    if (f->stamp[k] != g_stamp) { f->stamp[k] = g_stamp; f->old[k] = old; vec_push(&f->ch, k); }
    if (old != f->dflt) {
        vec *b = val_bucket(&f->idx, &f->nidx, old);
        if (!b) return;
        int32_t p = f->ipos[k], last = b->a[--b->n];
        b->a[p] = last;
        f->ipos[last] = p;
        p = f->kpos[k];
        last = f->keys.a[--f->keys.n];
        f->keys.a[p] = last;
        f->kpos[last] = p;
    }
    f->val[k] = v;
    if (v != f->dflt) {
        vec *b = val_bucket(&f->idx, &f->nidx, v);
        if (!b) return;
        f->ipos[k] = b->n;
        vec_push(b, k);
        f->kpos[k] = f->keys.n;
        vec_push(&f->keys, k);
    }
}

/* sparse.py's _idx / _idx_pre and D.keys() / (D.keys() | CH) */
static cset uf_idx(const ufunc *f, i64 v, i64 total) { return v == f->dflt ? cs_range(total) : uf_bucket_set(f, v); }
static cset uf_idx_pre(const ufunc *f, i64 v, i64 total) {
    if (v == f->dflt) return cs_range(total);
    cset b = uf_bucket_set(f, v);
    return cs_cat(b.a, b.n, f->ch.a, f->ch.n);
}
static cset uf_keys(const ufunc *f) { cset s = {f->keys.n ? f->keys.a : cs_none, f->keys.n}; return s; }
static cset uf_keys_pre(const ufunc *f) { return cs_cat(f->keys.a, f->keys.n, f->ch.a, f->ch.n); }

/* ---------------------------------------------------------------- binary functions */
typedef struct {
    int32_t a, b;
    i64 val, old;
    uint32_t stamp;
    int32_t p0pos, p1pos, kpos;
} bentry;

/* cells (a, b) -> entry (entries are never removed: a default cell is in no index); positional
 * indexes: p0[(b, v)] = the a with cell (a, b) == v, p1[(a, v)] = the b with cell (a, b) == v */
typedef struct {
    i64 dflt;
    hmap cells, p0, p1;
    bentry *e;
    i64 ne, cape;
    vec *bk;
    i64 nbk, capbk;
    vec keys, ch; /* entry indexes */
} bfunc;

static inline i64 bf_get(const bfunc *f, i64 a, i64 b) {
    if (a < 0 || b < 0 || a > INT32_MAX || b > INT32_MAX) return f->dflt;
    int32_t i = hm_get(&f->cells, pack2(a, b));
    return i < 0 ? f->dflt : f->e[i].val;
}
static inline i64 bf_pre(const bfunc *f, i64 a, i64 b) {
    if (a < 0 || b < 0 || a > INT32_MAX || b > INT32_MAX) return f->dflt;
    int32_t i = hm_get(&f->cells, pack2(a, b));
    if (i < 0) return f->dflt;
    return f->e[i].stamp == g_stamp ? f->e[i].old : f->e[i].val;
}

static vec *bf_bucket(bfunc *f, hmap *m, i64 rest, i64 v, int create) {
    if (v < INT32_MIN || v > INT32_MAX) { g_bail = 1; return NULL; }
    int32_t i = hm_get(m, pack2(rest, v));
    if (i < 0) {
        if (!create) return NULL;
        if (f->nbk == f->capbk) {
            i64 c = f->capbk ? f->capbk * 2 : 16;
            vec *nb = realloc(f->bk, (size_t)c * sizeof *nb);
            if (!nb) { g_bail = 1; return NULL; }
            f->bk = nb;
            f->capbk = c;
        }
        memset(&f->bk[f->nbk], 0, sizeof(vec));
        i = (int32_t)f->nbk++;
        hm_put(m, pack2(rest, v), i);
    }
    return &f->bk[i];
}

static void bf_set(bfunc *f, i64 a, i64 b, i64 v) {
    if (a < 0 || b < 0 || a > INT32_MAX || b > INT32_MAX) { g_bail = 1; return; }
    int32_t i = hm_get(&f->cells, pack2(a, b));
    if (i < 0) {
        if (v == f->dflt) return;
        if (f->ne == f->cape) {
            i64 c = f->cape ? f->cape * 2 : 16;
            bentry *ne = realloc(f->e, (size_t)c * sizeof *ne);
            if (!ne) { g_bail = 1; return; }
            f->e = ne;
            f->cape = c;
        }
        i = (int32_t)f->ne++;
        bentry init = {(int32_t)a, (int32_t)b, f->dflt, f->dflt, 0, -1, -1, -1};
        f->e[i] = init;
        hm_put(&f->cells, pack2(a, b), i);
    }
    bentry *e = &f->e[i];
    i64 old = e->val;
    if (old == v) return;
    if (e->stamp != g_stamp) { e->stamp = g_stamp; e->old = old; vec_push(&f->ch, i); }
    if (old != f->dflt) {
        vec *bk = bf_bucket(f, &f->p0, b, old, 0);
        if (!bk) { g_bail = 1; return; }
        int32_t p = e->p0pos, last = bk->a[--bk->n];
        bk->a[p] = last;
        f->e[hm_get(&f->cells, pack2(last, b))].p0pos = p;
        bk = bf_bucket(f, &f->p1, a, old, 0);
        if (!bk) { g_bail = 1; return; }
        p = e->p1pos;
        last = bk->a[--bk->n];
        bk->a[p] = last;
        f->e[hm_get(&f->cells, pack2(a, last))].p1pos = p;
        p = e->kpos;
        last = f->keys.a[--f->keys.n];
        f->keys.a[p] = last;
        f->e[last].kpos = p;
    }
    e->val = v;
    if (v != f->dflt) {
        vec *bk = bf_bucket(f, &f->p0, b, v, 1);
        if (!bk) return;
        e = &f->e[i];
        e->p0pos = bk->n;
        vec_push(bk, a);
        bk = bf_bucket(f, &f->p1, a, v, 1);
        if (!bk) return;
        e = &f->e[i];
        e->p1pos = bk->n;
        vec_push(bk, b);
        e->kpos = f->keys.n;
        vec_push(&f->keys, i);
    }
}

/* sparse.py's _pidx / _pidx_pre: the values at position pos whose cell (with the other position rest) holds v */
static cset bf_pidx(bfunc *f, int pos, i64 rest, i64 v, i64 total) {
    if (v == f->dflt) return cs_range(total);
    if (rest < 0 || rest > INT32_MAX || v < INT32_MIN || v > INT32_MAX) return cs_empty();
    int32_t i = hm_get(pos == 0 ? &f->p0 : &f->p1, pack2(rest, v));
    if (i < 0 || f->bk[i].n == 0) return cs_empty();
    cset s = {f->bk[i].a, f->bk[i].n};
    return s;
}
static cset bf_pidx_pre(bfunc *f, int pos, i64 rest, i64 v, i64 total) {
    if (v == f->dflt) return cs_range(total);
    cset got = bf_pidx(f, pos, rest, v, total);
    i64 n = f->ch.n;
    if (!n) return got;
    int32_t *p = arena_alloc(got.n + n);
    if (!p) return cs_empty();
    if (got.n) memcpy(p, got.a, (size_t)got.n * sizeof *p);
    for (i64 j = 0; j < n; j++) {
        const bentry *e = &f->e[f->ch.a[j]];
        p[got.n + j] = pos == 0 ? e->a : e->b;
    }
    cset s = {p, got.n + n};
    return s;
}

/* ---------------------------------------------------------------- buffer of (key, value) rows of whole-function updates */
static i64 *wbuf;
static i64 wbuf_n, wbuf_cap;
static void wbuf_push(i64 x) {
    if (wbuf_n == wbuf_cap) {
        i64 c = wbuf_cap ? wbuf_cap * 2 : 256;
        i64 *nw = realloc(wbuf, (size_t)c * sizeof *nw);
        if (!nw) { g_bail = 1; return; }
        wbuf = nw;
        wbuf_cap = c;
    }
    wbuf[wbuf_n++] = x;
}

static void uf_reset(ufunc *f, i64 dflt) {
    free(f->val); free(f->old); free(f->stamp); free(f->ipos); free(f->kpos);
    for (i64 i = 0; i < f->nidx; i++) free(f->idx[i].a);
    free(f->idx); free(f->keys.a); free(f->ch.a);
    memset(f, 0, sizeof *f);
    f->dflt = dflt;
}

static void bf_reset(bfunc *f, i64 dflt) {
    free(f->cells.k); free(f->cells.v); free(f->p0.k); free(f->p0.v); free(f->p1.k); free(f->p1.v);
    for (i64 i = 0; i < f->nbk; i++) free(f->bk[i].a);
    free(f->bk); free(f->e); free(f->keys.a); free(f->ch.a);
    memset(f, 0, sizeof *f);
    f->dflt = dflt;
}

/* ---------------------------------------------------------------- identities */
/* per sort: external name (a string, or an integer: different keys, as in Python's dict) -> 0, 1, 2, ... */
typedef struct {
    uint64_t h;
    i64 off;
    int32_t len, id;
} ientry;
typedef struct {
    ientry *t;
    i64 cap, n;
    i64 *by_id; /* identity -> its entry's slot in t (the names by identity, for the state export) */
    i64 by_cap;
} itable;

static void itable_reset(itable *tab) { free(tab->t); free(tab->by_id); memset(tab, 0, sizeof *tab); }

static char *spool;
static i64 spool_n, spool_cap;

static uint64_t hbytes(const char *s, i64 n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, (size_t)n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return hmix(h);
}

static i64 itable_intern(itable *tab, const char *key, i64 len) {
    if (len > (1 << 20)) { g_bail = 1; return 0; }
    uint64_t h = hbytes(key, len);
    if ((tab->n + 1) * 2 > tab->cap) {
        i64 cap = tab->cap ? tab->cap * 2 : 64;
        ientry *nt = calloc((size_t)cap, sizeof *nt);
        if (!nt) { g_bail = 1; return 0; }
        for (i64 i = 0; i < cap; i++) nt[i].id = -1;
        for (i64 i = 0; i < tab->cap; i++) {
            if (tab->t[i].id < 0) continue;
            i64 j = (i64)(tab->t[i].h & (uint64_t)(cap - 1));
            while (nt[j].id >= 0) j = (j + 1) & (cap - 1);
            nt[j] = tab->t[i];
        }
        free(tab->t);
        tab->t = nt;
        tab->cap = cap;
        for (i64 j = 0; j < cap; j++)
            if (nt[j].id >= 0) tab->by_id[nt[j].id] = j;
    }
    i64 mask = tab->cap - 1, i = (i64)(h & (uint64_t)mask);
    while (tab->t[i].id >= 0) {
        ientry *e = &tab->t[i];
        if (e->h == h && e->len == len && memcmp(spool + e->off, key, (size_t)len) == 0) return e->id;
        i = (i + 1) & mask;
    }
    if (spool_n + len > spool_cap) {
        i64 c = spool_cap ? spool_cap : 1 << 16;
        while (c < spool_n + len) c *= 2;
        char *np = realloc(spool, (size_t)c);
        if (!np) { g_bail = 1; return 0; }
        spool = np;
        spool_cap = c;
    }
    if (tab->n == tab->by_cap) {
        i64 c = tab->by_cap ? tab->by_cap * 2 : 64;
        i64 *nb = realloc(tab->by_id, (size_t)c * sizeof *nb);
        if (!nb) { g_bail = 1; return 0; }
        tab->by_id = nb;
        tab->by_cap = c;
    }
    tab->by_id[tab->n] = i;
    memcpy(spool + spool_n, key, (size_t)len);
    ientry e = {h, spool_n, (int32_t)len, (int32_t)tab->n};
    spool_n += len;
    tab->t[i] = e;
    return tab->n++;
}

/* ---------------------------------------------------------------- trace lines */
enum { J_STR, J_INT, J_TRUE, J_FALSE, J_NULL, J_OTHER };

typedef struct {
    const char *s; /* strings: the bytes between the quotes */
    i64 len;
    int kind;
    int esc; /* the string has escapes (its bytes are not its value) */
    i64 ival;
    int isort; /* an argument already interned in this event: its sort and identity (-1: not yet) */
    i64 iid;
} jval;

typedef struct {
    const char *k;
    i64 klen;
    jval v;
} jpair;

#define MAX_PAIRS 32

typedef struct {
    i64 seq;
    jval op, result;
    int has_seq, has_op, has_args, has_result, has_outputs;
    jpair args[MAX_PAIRS];
    int nargs;
    jpair outs[MAX_PAIRS];
    int nouts;
} event;

static inline const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HAS_ZERO(v) (((v) - ONES) & ~(v) & HIGHS)
#define HAS_LESS(v, n) (((v) - ONES * (n)) & ~(v) & HIGHS)

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* a JSON string at p (after the quote); returns the position after the closing quote, or NULL */
static const char *scan_string(const char *p, const char *end, jval *out) {
    const char *s = p;
    int esc = 0;
    /* fast path, 8 bytes at a time: up to the next quote, no escape, control or non-ASCII byte */
    const char *c = p;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - c >= 8) {
        uint64_t x;
        memcpy(&x, c, 8);
        uint64_t m = HAS_ZERO(x ^ (ONES * '"')) | HAS_ZERO(x ^ (ONES * '\\')) | HAS_LESS(x, 0x20) | (x & HIGHS);
        if (!m) { c += 8; continue; }
        c += __builtin_ctzll(m) / 8; /* the first flagged byte is exact */
        if (*c == '"') {
            if (out) { out->s = s; out->len = c - s; out->kind = J_STR; out->esc = 0; }
            return c + 1;
        }
        break; /* an escape or a byte to reject: the careful loop below */
    }
#endif
    while (c < end && (unsigned char)*c >= 0x20 && (unsigned char)*c < 0x80 && *c != '\\' && *c != '"') c++;
    if (c < end && *c == '"') {
        if (out) { out->s = s; out->len = c - s; out->kind = J_STR; out->esc = 0; }
        return c + 1;
    }
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            if (out) { out->s = s; out->len = p - s; out->kind = J_STR; out->esc = esc; }
            return p + 1;
        }
        if (c < 0x20 || c >= 0x80) return NULL; /* invalid, or non-ASCII: the Python engine decides */
        if (c == '\\') {
            esc = 1;
            if (p + 1 >= end) return NULL;
            char e = p[1];
            if (e == 'u') {
                if (p + 5 >= end || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5])) return NULL;
                p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) return NULL;
            p += 2;
            continue;
        }
        p++;
    }
    return NULL;
}

/* a JSON number; integers of up to 18 digits get J_INT, other valid numbers J_OTHER */
static const char *scan_number(const char *p, const char *end, jval *out) {
    int neg = 0;
    if (p < end && *p == '-') { neg = 1; p++; }
    if (p >= end || *p < '0' || *p > '9') return NULL;
    i64 v = 0;
    int digits = 0;
    if (*p == '0') { p++; digits = 1; }
    else while (p < end && *p >= '0' && *p <= '9') { if (++digits <= 18) v = v * 10 + (*p - '0'); p++; }
    int frac = 0;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
        frac = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
        frac = 1;
    }
    if (out) {
        out->kind = (frac || digits > 18) ? J_OTHER : J_INT;
        out->ival = neg ? -v : v;
        out->esc = 0;
    }
    return p;
}

static const char *scan_value(const char *p, const char *end, jval *out, int depth);

/* an object or array after its opening bracket, validated and skipped */
static const char *skip_container(const char *p, const char *end, char close, int depth) {
    if (depth > 100) return NULL;
    p = skip_ws(p, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
        if (close == '}') {
            if (p >= end || *p != '"') return NULL;
            p = scan_string(p + 1, end, NULL);
            if (!p) return NULL;
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return NULL;
            p = skip_ws(p + 1, end);
        }
        p = scan_value(p, end, NULL, depth + 1);
        if (!p) return NULL;
        p = skip_ws(p, end);
        if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
        if (p < end && *p == close) return p + 1;
        return NULL;
    }
}

static const char *scan_value(const char *p, const char *end, jval *out, int depth) {
    if (p >= end) return NULL;
    jval tmp;
    if (!out) out = &tmp;
    out->esc = 0;
    switch (*p) {
    case '"': return scan_string(p + 1, end, out);
    case '{': out->kind = J_OTHER; out->s = p; return skip_container(p + 1, end, '}', depth);
    case '[': out->kind = J_OTHER; out->s = p; return skip_container(p + 1, end, ']', depth);
    case 't': if (end - p >= 4 && !memcmp(p, "true", 4)) { out->kind = J_TRUE; return p + 4; } return NULL;
    case 'f': if (end - p >= 5 && !memcmp(p, "false", 5)) { out->kind = J_FALSE; return p + 5; } return NULL;
    case 'n': if (end - p >= 4 && !memcmp(p, "null", 4)) { out->kind = J_NULL; return p + 4; } return NULL;
    default: return scan_number(p, end, out);
    }
}

/* a flat object of name -> value (values validated; their kinds recorded) */
static const char *scan_pairs(const char *p, const char *end, jpair *pairs, int *n) {
    *n = 0;
    p = skip_ws(p, end);
    if (p < end && *p == '}') return p + 1;
    for (;;) {
        if (p >= end || *p != '"' || *n >= MAX_PAIRS) return NULL;
        jval k;
        p = scan_string(p + 1, end, &k);
        if (!p || k.esc) return NULL; /* an escaped name could spell any other name */
        for (int i = 0; i < *n; i++)
            if (pairs[i].klen == k.len && !memcmp(pairs[i].k, k.s, (size_t)k.len)) return NULL; /* duplicate */
        pairs[*n].k = k.s;
        pairs[*n].klen = k.len;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p = skip_ws(p + 1, end);
        p = scan_value(p, end, &pairs[*n].v, 1);
        if (!p) return NULL;
        pairs[*n].v.isort = -1;
        (*n)++;
        p = skip_ws(p, end);
        if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
        if (p < end && *p == '}') return p + 1;
        return NULL;
    }
}

static int key_is(const jval *k, const char *name) {
    size_t n = strlen(name);
    return (size_t)k->len == n && !memcmp(k->s, name, n);
}

/* one event line (already stripped); 0: parsed and shaped as tracecheck._check_event requires */
static int parse_event(const char *p, const char *end, event *ev) {
    ev->has_seq = ev->has_op = ev->has_args = ev->has_result = ev->has_outputs = 0;
    ev->nargs = ev->nouts = 0;
    if (p >= end || *p != '{') return 1;
    p = skip_ws(p + 1, end);
    int first = 1;
    for (;;) {
        if (first && p < end && *p == '}') { p++; break; }
        first = 0;
        if (p >= end || *p != '"') return 1;
        jval k;
        p = scan_string(p + 1, end, &k);
        if (!p || k.esc) return 1;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return 1;
        p = skip_ws(p + 1, end);
        if (key_is(&k, "args") || key_is(&k, "outputs")) {
            int is_args = key_is(&k, "args");
            if ((is_args ? ev->has_args : ev->has_outputs) || p >= end || *p != '{') return 1;
            p = is_args ? scan_pairs(p + 1, end, ev->args, &ev->nargs) : scan_pairs(p + 1, end, ev->outs, &ev->nouts);
            if (!p) return 1;
            if (is_args) ev->has_args = 1; else ev->has_outputs = 1;
        } else {
            jval v;
            p = scan_value(p, end, &v, 1);
            if (!p) return 1;
            if (key_is(&k, "seq")) {
                if (ev->has_seq || v.kind != J_INT) return 1;
                ev->has_seq = 1;
                ev->seq = v.ival;
            } else if (key_is(&k, "op")) {
                if (ev->has_op || v.kind != J_STR || v.esc || v.len == 0) return 1;
                ev->has_op = 1;
                ev->op = v;
            } else if (key_is(&k, "result")) {
                if (ev->has_result || v.kind != J_STR || v.esc) return 1;
                ev->has_result = 1;
                ev->result = v;
            }
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
        if (p < end && *p == '}') { p++; break; }
        return 1;
    }
    p = skip_ws(p, end);
    if (p != end) return 1;
    return !(ev->has_seq && ev->has_op && ev->has_args);
}

static const jval *ev_arg(const event *ev, const char *name, size_t n) {
    for (int i = 0; i < ev->nargs; i++)
        if ((size_t)ev->args[i].klen == n && !memcmp(ev->args[i].k, name, n)) return &ev->args[i].v;
    return NULL;
}

static int jstr_is(const jval *v, const char *text) {
    size_t n = strlen(text);
    return v->kind == J_STR && !v->esc && (size_t)v->len == n && !memcmp(v->s, text, n);
}

/* an Id argument: a string or an integer (Python interns other values by repr: the Python engine decides) */
static i64 intern_arg_(itable *tab, const jval *v);

/* the identity of an argument (an event's argument is looked up once per sort, not once per model) */
static i64 intern_arg(itable *tabs, int sort, const jval *cv) {
    jval *v = (jval *)cv;
    if (v->isort == sort) return v->iid;
    i64 id = intern_arg_(&tabs[sort], v);
    if (!g_bail) { v->isort = sort; v->iid = id; }
    return id;
}

static i64 intern_arg_(itable *tab, const jval *v) {
    char buf[16];
    if (v->kind == J_STR && !v->esc) {
        if (v->len + 1 > (1 << 20)) { g_bail = 1; return 0; }
        /* tag byte 's' + bytes; integers: tag 'i' + 8 bytes */
        static char *kb;
        static i64 kcap;
        if (v->len + 1 > kcap) {
            kcap = (v->len + 1) * 2;
            char *nk = realloc(kb, (size_t)kcap);
            if (!nk) { g_bail = 1; return 0; }
            kb = nk;
        }
        kb[0] = 's';
        memcpy(kb + 1, v->s, (size_t)v->len);
        return itable_intern(tab, kb, v->len + 1);
    }
    if (v->kind == J_INT) {
        buf[0] = 'i';
        memcpy(buf + 1, &v->ival, 8);
        return itable_intern(tab, buf, 9);
    }
    g_bail = 1;
    return 0;
}

/* a Bool argument: true/false or "true"/"false" */
static i64 bool_arg(const jval *v) {
    if (v->kind == J_TRUE || jstr_is(v, "true")) return 1;
    if (v->kind == J_FALSE || jstr_is(v, "false")) return 0;
    g_bail = 1;
    return 0;
}

static i64 int_arg(const jval *v) {
    if (v->kind == J_INT) return v->ival;
    g_bail = 1;
    return 0;
}

/* a reported output's text as the monitor compares it (str(value); booleans true/false) */
static int output_text(const jval *v, char *buf, const char **s, i64 *n) {
    if (v->kind == J_STR && !v->esc) { *s = v->s; *n = v->len; return 1; }
    if (v->kind == J_TRUE) { *s = "true"; *n = 4; return 1; }
    if (v->kind == J_FALSE) { *s = "false"; *n = 5; return 1; }
    if (v->kind == J_INT) {
        char tmp[24];
        int k = 0;
        uint64_t u = v->ival < 0 ? (uint64_t)(-(v->ival + 1)) + 1 : (uint64_t)v->ival;
        do { tmp[k++] = (char)('0' + u % 10); u /= 10; } while (u);
        int m = 0;
        if (v->ival < 0) buf[m++] = '-';
        while (k) buf[m++] = tmp[--k];
        *s = buf;
        *n = m;
        return 1;
    }
    return 0;
}

/* the model's rendering of a predicted value (Sort.render), compared with a reported text */
static int render_is(const char *s, i64 n, const char *prefix, i64 v, int opt) {
    char buf[48];
    if (opt && v == -1) return n == 4 && !memcmp(s, "none", 4);
    size_t pl = strlen(prefix);
    if (pl > 16) return 0;
    memcpy(buf, prefix, pl);
    char tmp[24];
    int k = 0;
    uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    do { tmp[k++] = (char)('0' + u % 10); u /= 10; } while (u);
    size_t m = pl;
    if (v < 0) buf[m++] = '-';
    while (k) buf[m++] = tmp[--k];
    return (i64)m == n && !memcmp(buf, s, m);
}

static int text_is(const char *s, i64 n, const char *text) {
    size_t m = strlen(text);
    return (size_t)n == m && !memcmp(s, text, m);
}

/* ---------------------------------------------------------------- events as Python dicts (the live monitor)
 * The live monitor hands the recorder's event dict itself to the engine (no JSON text): `event_from_dict`
 * fills the same `event` that `parse_event` fills from the dict's JSON line, through a few functions of
 * CPython's stable C API whose addresses Python passes in (`iospec_py_setup`; no Python headers needed, and
 * the library has no Python symbols to resolve).  The caller holds the GIL (ctypes.PyDLL), and the dict
 * stays alive during the step, so the strings are read in place.  Anything the JSON text would not give
 * exactly (an object of another type, a str subclass, a non-str key) is a BAIL: the Python engine decides. */
typedef struct pyobject_ pyobj; /* opaque: only pointers are compared and passed to the API */
typedef intptr_t pyssize;

static struct {
    pyobj *(*dict_getitem)(pyobj *, pyobj *);                  /* PyDict_GetItem (borrowed; sets no error) */
    int (*dict_next)(pyobj *, pyssize *, pyobj **, pyobj **);  /* PyDict_Next */
    pyssize (*dict_size)(pyobj *);                             /* PyDict_Size */
    const char *(*utf8)(pyobj *, pyssize *);                   /* PyUnicode_AsUTF8AndSize */
    long long (*as_ll)(pyobj *, int *);                        /* PyLong_AsLongLongAndOverflow */
    pyobj *(*type)(pyobj *);                                   /* PyObject_Type (new reference) */
    void (*decref)(pyobj *);                                   /* Py_DecRef */
    int (*list_append)(pyobj *, pyobj *);                      /* PyList_Append */
    void (*err_clear)(void);                                   /* PyErr_Clear */
    void (*incref)(pyobj *);                                   /* Py_IncRef */
    pyobj *(*call)(pyobj *, ...);                              /* PyObject_CallFunctionObjArgs */
} py;
/* objects (kept alive by the Python side): the keys read, the exact types accepted, the singletons, and
 * the Python callable that gets the events the C does not accept */
enum { PK_SEQ, PK_OP, PK_ARGS, PK_RESULT, PK_OUTPUTS, PT_DICT, PT_STR, PT_INT, PO_NONE, PO_TRUE, PO_FALSE,
       PO_FALLBACK, PY_NOBJ };
static pyobj *pyo[PY_NOBJ];
static int py_ready;

static pyobj *py_type(pyobj *o) {
    pyobj *t = py.type(o);
    py.decref(t); /* a borrowed view: o keeps its type alive */
    return t;
}

/* the bytes json.dumps(ensure_ascii=True) writes as escapes: then the JSON text is not the string's bytes */
static int py_needs_escape(const char *s, pyssize n) {
    for (pyssize i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return 1;
    }
    return 0;
}

/* a value as parse_event's jval of its JSON text; 1: not a str, int, bool or None (the caller bails) */
static int py_value(pyobj *o, jval *v) {
    v->esc = 0;
    v->isort = -1;
    if (o == pyo[PO_NONE]) { v->kind = J_NULL; return 0; }
    if (o == pyo[PO_TRUE]) { v->kind = J_TRUE; return 0; }
    if (o == pyo[PO_FALSE]) { v->kind = J_FALSE; return 0; }
    pyobj *t = py_type(o);
    if (t == pyo[PT_STR]) {
        pyssize n;
        const char *s = py.utf8(o, &n);
        if (!s) { py.err_clear(); return 1; } /* e.g. a lone surrogate */
        v->kind = J_STR;
        v->s = s;
        v->len = n;
        v->esc = py_needs_escape(s, n);
        return 0;
    }
    if (t == pyo[PT_INT]) {
        int overflow = 0;
        long long x = py.as_ll(o, &overflow);
        /* scan_number: up to 18 digits is J_INT, more is J_OTHER */
        v->kind = (overflow || x > 999999999999999999LL || x < -999999999999999999LL) ? J_OTHER : J_INT;
        v->ival = x;
        return 0;
    }
    return 1;
}

/* a dict of str -> value as scan_pairs' pairs; 1: anything else */
static int py_pairs(pyobj *d, jpair *pairs, int *n) {
    *n = 0;
    if (py_type(d) != pyo[PT_DICT]) return 1;
    pyssize pos = 0;
    pyobj *k, *val;
    while (py.dict_next(d, &pos, &k, &val)) {
        if (*n >= MAX_PAIRS || py_type(k) != pyo[PT_STR]) return 1;
        pyssize kn;
        const char *ks = py.utf8(k, &kn);
        if (!ks) { py.err_clear(); return 1; }
        if (py_needs_escape(ks, kn)) return 1; /* as scan_pairs: an escaped name is not read */
        pairs[*n].k = ks;
        pairs[*n].klen = kn;
        if (py_value(val, &pairs[*n].v)) return 1;
        (*n)++;
    }
    return 0;
}

/* an event dict as parse_event fills it from the dict's JSON line; 0: done, 1: bail, 2: a note (an op
 * ``note.*``: nothing else is read).  Keys other than seq, op, args, result and outputs are not read
 * (parse_event only checks that they are JSON). */
static int op_from_dict(pyobj *d, event *ev) {
    ev->has_seq = ev->has_op = ev->has_args = ev->has_result = ev->has_outputs = 0;
    ev->nargs = ev->nouts = 0;
    if (py_type(d) != pyo[PT_DICT]) return 1;
    pyobj *o = py.dict_getitem(d, pyo[PK_OP]);
    if (!o || py_value(o, &ev->op) || ev->op.kind != J_STR || ev->op.esc || ev->op.len == 0) return 1;
    if (ev->op.len >= 5 && !memcmp(ev->op.s, "note.", 5)) return 2;
    ev->has_op = 1;
    return 0;
}

static int args_from_dict(pyobj *d, event *ev) {
    pyobj *o = py.dict_getitem(d, pyo[PK_ARGS]);
    if (!o || py_pairs(o, ev->args, &ev->nargs)) return 1;
    ev->has_args = 1;
    return 0;
}

static int event_from_dict(pyobj *d, event *ev) {
    int shape = op_from_dict(d, ev);
    if (shape) return shape;
    pyobj *o = py.dict_getitem(d, pyo[PK_SEQ]);
    jval v;
    if (!o || py_value(o, &v) || v.kind != J_INT) return 1;
    ev->has_seq = 1;
    ev->seq = v.ival;
    if (args_from_dict(d, ev)) return 1;
    o = py.dict_getitem(d, pyo[PK_RESULT]);
    if (o) {
        if (py_value(o, &ev->result) || ev->result.kind != J_STR || ev->result.esc) return 1;
        ev->has_result = 1;
    }
    o = py.dict_getitem(d, pyo[PK_OUTPUTS]);
    if (o) {
        if (py_pairs(o, ev->outs, &ev->nouts)) return 1;
        ev->has_outputs = 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the live monitor's event log
 * The runtime thread (the producer, under the GIL) decodes each event dict and appends it to the log as a
 * JSON line of what the monitor reads (seq, op, args, result, outputs); the engine's own thread (the
 * consumer, no GIL) parses and checks the lines in order (the driver's `live_consumer`).  The log also
 * serves the Python monitor that takes over after a stop: it replays the accepted lines.  The log is a list
 * of chunks that never move (the consumer reads them while the producer writes).  Keeping the event dicts
 * themselves made the garbage collector traverse all of them again and again, so only the last ones are
 * held (`g_ring`: the monitor's recent events, which a report prints whole, and the ones not yet checked). */
#define LOG_CHUNK ((i64)1 << 20)
#define LOG_MAX_CHUNKS 65536
static char *g_chunks[LOG_MAX_CHUNKS];
static i64 g_chunk_len[LOG_MAX_CHUNKS]; /* bytes of complete lines (written by the producer only, atomically) */
static int g_nchunks;
/* the line being written */
static char *g_line;
static i64 g_line_n, g_line_cap;

static int log_put(const char *s, i64 n) {
    if (g_line_n + n > g_line_cap) {
        i64 c = g_line_cap ? g_line_cap : 256;
        while (c < g_line_n + n) c *= 2;
        char *nl = realloc(g_line, (size_t)c);
        if (!nl) return 1;
        g_line = nl;
        g_line_cap = c;
    }
    memcpy(g_line + g_line_n, s, (size_t)n);
    g_line_n += n;
    return 0;
}
#define LOG_LIT(text) log_put(text, (i64)sizeof(text) - 1)

static int log_int(i64 v) {
    char tmp[24], buf[24];
    int k = 0, m = 0;
    uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    do { tmp[k++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) buf[m++] = '-';
    while (k) buf[m++] = tmp[--k];
    return log_put(buf, m);
}

/* a value's JSON text; 1: a value it cannot write exactly (escapes, a huge integer) */
static int log_value(const jval *v) {
    switch (v->kind) {
    case J_STR: return v->esc || LOG_LIT("\"") || log_put(v->s, v->len) || LOG_LIT("\"");
    case J_INT: return log_int(v->ival);
    case J_TRUE: return LOG_LIT("true");
    case J_FALSE: return LOG_LIT("false");
    case J_NULL: return LOG_LIT("null");
    default: return 1;
    }
}

static int log_pairs(const jpair *pairs, int n) {
    if (LOG_LIT("{")) return 1;
    for (int i = 0; i < n; i++)
        if ((i && LOG_LIT(",")) || LOG_LIT("\"") || log_put(pairs[i].k, pairs[i].klen) || LOG_LIT("\":") ||
            log_value(&pairs[i].v))
            return 1;
    return LOG_LIT("}");
}

/* one event as a JSON line at the end of the log; 1 (and nothing written): it cannot be written exactly */
static int log_event(const event *ev) {
    g_line_n = 0;
    int bad = LOG_LIT("{\"seq\":") || log_int(ev->seq) || LOG_LIT(",\"op\":") || log_value(&ev->op) ||
              LOG_LIT(",\"args\":") || log_pairs(ev->args, ev->nargs) ||
              (ev->has_result && (LOG_LIT(",\"result\":") || log_value(&ev->result))) ||
              (ev->has_outputs && (LOG_LIT(",\"outputs\":") || log_pairs(ev->outs, ev->nouts))) || LOG_LIT("}\n");
    if (bad || g_line_n > LOG_CHUNK) return 1;
    i64 used = g_nchunks ? __atomic_load_n(&g_chunk_len[g_nchunks - 1], __ATOMIC_RELAXED) : 0;
    if (!g_nchunks || used + g_line_n > LOG_CHUNK) {
        if (g_nchunks == LOG_MAX_CHUNKS) return 1;
        char *c = malloc((size_t)LOG_CHUNK);
        if (!c) return 1;
        g_chunks[g_nchunks] = c;
        __atomic_store_n(&g_chunk_len[g_nchunks], 0, __ATOMIC_RELAXED);
        g_nchunks++;
        used = 0;
    }
    memcpy(g_chunks[g_nchunks - 1] + used, g_line, (size_t)g_line_n);
    __atomic_store_n(&g_chunk_len[g_nchunks - 1], used + g_line_n, __ATOMIC_RELAXED);
    return 0;
}

/* the consumer's read position */
static int g_rchunk;
static i64 g_rpos;

/* the next line (published: the caller saw it counted); its bytes without the newline */
static const char *log_next(i64 *len) {
    if (g_rpos >= __atomic_load_n(&g_chunk_len[g_rchunk], __ATOMIC_RELAXED)) { g_rchunk++; g_rpos = 0; }
    const char *p = g_chunks[g_rchunk] + g_rpos;
    const char *nl = memchr(p, '\n', (size_t)(__atomic_load_n(&g_chunk_len[g_rchunk], __ATOMIC_RELAXED) - g_rpos));
    if (!nl) { *len = 0; return p; }
    *len = nl - p;
    g_rpos += *len + 1;
    return p;
}

/* an empty log (its first chunk made now: the consumer starts reading there); 1: out of memory */
static int log_open(void) {
    for (int i = 0; i < g_nchunks; i++) free(g_chunks[i]);
    g_nchunks = 0;
    g_rchunk = 0;
    g_rpos = 0;
    g_chunks[0] = malloc((size_t)LOG_CHUNK);
    if (!g_chunks[0]) return 1;
    g_chunk_len[0] = 0;
    g_nchunks = 1;
    return 0;
}

/* event dicts by event number (slot n % g_ring_cap), held with a reference (producer only) */
static pyobj **g_ring;
static i64 g_ring_cap;

static void ring_put(i64 n, pyobj *d) {
    pyobj **slot = &g_ring[n % g_ring_cap];
    pyobj *old = *slot;
    py.incref(d);
    *slot = d;
    if (old) py.decref(old); /* last: freeing it cannot see a half-updated ring */
}

static void ring_clear(void) {
    pyobj **old = g_ring;
    i64 n = g_ring_cap;
    g_ring = (pyobj **)0;
    g_ring_cap = 0;
    for (i64 i = 0; i < n; i++)
        if (old[i]) py.decref(old[i]);
    free(old);
}

/* a part instance is checked: 1 if it is false; an evaluation error there is the Python engine's to report */
#define INST_FAILS(call) ({ int e0_ = g_err; g_err = 0; int ok_ = (call); int bad_ = 0; \
    if (g_err) { g_bail = 1; bad_ = 1; } else bad_ = !ok_; g_err = e0_; bad_; })

/* verdict kinds */
enum { K_CLEAN = 0, K_WRONG_RESULT = 1, K_NOT_ALLOWED = 2, K_WRONG_OUTPUT = 3, K_INVARIANT = 4, K_BAIL = 9 };
static int g_kind;

/* ================================================================ generated code follows */
