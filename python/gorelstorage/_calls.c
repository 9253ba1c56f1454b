/* Calls into the Go engine's exports without ctypes.
 *
 * _native.py loads the library with ctypes (dlopen, the ABI version check) and
 * hands this module the exports' addresses. A ctypes call costs about 2 us once
 * its result struct, argument conversion and the copy of the returned bytes are
 * counted; a call through here costs a few hundred nanoseconds, which matters
 * for loads served from the shared cache and for the several calls of every
 * commit. Built against the stable ABI (Python 3.10+); when it cannot be built,
 * _native.py keeps calling through ctypes.
 *
 * Every export has the form `int32_t grs_x(args..., grs_result *r)`; the
 * argument lists that exist are the shapes below (u: uint64, i: int64,
 * w: int32, b: a bytes object or None, passed as a pointer).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

static const char *const shapes[] = {
    "", "u", "uu", "uuu", "bi", "ubi", "uui", "uuuiii", "ubiuw", "uuubi", "uubi", "uuubibi", "uubibi", "bii", NULL,
};

typedef grs_result R;
typedef int32_t (*f_)(R *);
typedef int32_t (*f_u)(uint64_t, R *);
typedef int32_t (*f_uu)(uint64_t, uint64_t, R *);
typedef int32_t (*f_uuu)(uint64_t, uint64_t, uint64_t, R *);
typedef int32_t (*f_bi)(const char *, int64_t, R *);
typedef int32_t (*f_ubi)(uint64_t, const char *, int64_t, R *);
typedef int32_t (*f_uui)(uint64_t, uint64_t, int64_t, R *);
typedef int32_t (*f_uuuiii)(uint64_t, uint64_t, uint64_t, int64_t, int64_t, int64_t, R *);
typedef int32_t (*f_ubiuw)(uint64_t, const char *, int64_t, uint64_t, int32_t, R *);
typedef int32_t (*f_uuubi)(uint64_t, uint64_t, uint64_t, const char *, int64_t, R *);
typedef int32_t (*f_uubi)(uint64_t, uint64_t, const char *, int64_t, R *);
typedef int32_t (*f_uuubibi)(uint64_t, uint64_t, uint64_t, const char *, int64_t, const char *, int64_t, R *);
typedef int32_t (*f_uubibi)(uint64_t, uint64_t, const char *, int64_t, const char *, int64_t, R *);
typedef int32_t (*f_bii)(const char *, int64_t, int64_t, R *);

/* Builds the exception for a failed call: error(kind, oid or None, serial0, serial1, message). */
static PyObject *error_factory;
/* Builds the exception for a call from a forked child. */
static PyObject *fork_error_factory;
/* Set in a child forked after the library was bound: its Go runtime has no threads. */
static volatile int forked;

static void on_fork_child(void) { forked = 1; }

typedef union {
    uint64_t u;
    int64_t i;
    const char *b;
} arg;

static int convert(char kind, PyObject *o, arg *out) {
    switch (kind) {
    case 'u':
        out->u = PyLong_AsUnsignedLongLongMask(o);
        return out->u == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
    case 'i':
    case 'w':
        out->i = PyLong_AsLongLong(o);
        if (out->i == -1 && PyErr_Occurred())
            return -1;
        if (kind == 'w' && (out->i < INT32_MIN || out->i > INT32_MAX)) {
            PyErr_SetString(PyExc_OverflowError, "value does not fit an int32");
            return -1;
        }
        return 0;
    default: /* 'b' */
        if (o == Py_None) {
            out->b = NULL;
            return 0;
        }
        if (!PyBytes_Check(o)) {
            PyErr_Format(PyExc_TypeError, "expected bytes or None, not %R", o);
            return -1;
        }
        out->b = PyBytes_AsString(o);
        return out->b == NULL ? -1 : 0;
    }
}

static int32_t dispatch(void *fn, int shape, arg *a, R *r) {
    switch (shape) {
    case 0: return ((f_)fn)(r);
    case 1: return ((f_u)fn)(a[0].u, r);
    case 2: return ((f_uu)fn)(a[0].u, a[1].u, r);
    case 3: return ((f_uuu)fn)(a[0].u, a[1].u, a[2].u, r);
    case 4: return ((f_bi)fn)(a[0].b, a[1].i, r);
    case 5: return ((f_ubi)fn)(a[0].u, a[1].b, a[2].i, r);
    case 6: return ((f_uui)fn)(a[0].u, a[1].u, a[2].i, r);
    case 7: return ((f_uuuiii)fn)(a[0].u, a[1].u, a[2].u, a[3].i, a[4].i, a[5].i, r);
    case 8: return ((f_ubiuw)fn)(a[0].u, a[1].b, a[2].i, a[3].u, (int32_t)a[4].i, r);
    case 9: return ((f_uuubi)fn)(a[0].u, a[1].u, a[2].u, a[3].b, a[4].i, r);
    case 10: return ((f_uubi)fn)(a[0].u, a[1].u, a[2].b, a[3].i, r);
    case 11: return ((f_uuubibi)fn)(a[0].u, a[1].u, a[2].u, a[3].b, a[4].i, a[5].b, a[6].i, r);
    case 12: return ((f_uubibi)fn)(a[0].u, a[1].u, a[2].b, a[3].i, a[4].b, a[5].i, r);
    default: return ((f_bii)fn)(a[0].b, a[1].i, a[2].i, r);
    }
}

static void free_result(R *r) {
    free(r->message);
    free(r->data);
    r->message = NULL;
    r->data = NULL;
}

/* Raises exc (a new reference, or NULL when building it failed). */
static void raise_instance(PyObject *exc) {
    if (exc == NULL)
        return;
    PyObject *type = PyObject_Type(exc);
    PyErr_SetObject(type, exc);
    Py_DECREF(type);
    Py_DECREF(exc);
}

/* Raises the exception for a failed call and frees r; returns NULL. */
static PyObject *raise_error(int32_t kind, R *r) {
    PyObject *exc = NULL;
    PyObject *oid = r->has_oid ? PyLong_FromUnsignedLongLong(r->oid) : Py_NewRef(Py_None);
    PyObject *msg = r->message ? PyBytes_FromString(r->message) : PyBytes_FromString("");
    if (oid != NULL && msg != NULL)
        exc = PyObject_CallFunction(error_factory, "iOKKO", (int)kind, oid, (unsigned long long)r->serials[0],
                                    (unsigned long long)r->serials[1], msg);
    Py_XDECREF(oid);
    Py_XDECREF(msg);
    free_result(r);
    raise_instance(exc);
    return NULL;
}

static int check_bound(void) {
    if (forked) {
        raise_instance(PyObject_CallNoArgs(fork_error_factory));
        return -1;
    }
    if (error_factory == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "gorelstorage._calls is not bound to the engine");
        return -1;
    }
    return 0;
}

/* Calls fn with r, releasing the GIL unless hold is set. */
static int32_t run(void *fn, int shape, arg *a, R *r, int hold) {
    int32_t kind;
    memset(r, 0, sizeof(*r));
    if (hold)
        return dispatch(fn, shape, a, r);
    Py_BEGIN_ALLOW_THREADS
    kind = dispatch(fn, shape, a, r);
    Py_END_ALLOW_THREADS
    return kind;
}

/* call(address, shape, hold_gil, *args) -> (data or None, v0, v1, v2) */
static PyObject *call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs < 3) {
        PyErr_SetString(PyExc_TypeError, "call(address, shape, hold_gil, *args)");
        return NULL;
    }
    void *fn = PyLong_AsVoidPtr(args[0]);
    long shape = PyLong_AsLong(args[1]);
    int hold = PyObject_IsTrue(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (shape < 0 || shape >= (long)(sizeof(shapes) / sizeof(shapes[0])) - 1 || fn == NULL) {
        PyErr_SetString(PyExc_ValueError, "bad export address or shape");
        return NULL;
    }
    const char *kinds = shapes[shape];
    Py_ssize_t n = (Py_ssize_t)strlen(kinds);
    if (nargs - 3 != n) {
        PyErr_Format(PyExc_TypeError, "the export takes %zd arguments, %zd given", n, nargs - 3);
        return NULL;
    }
    arg a[8];
    for (Py_ssize_t i = 0; i < n; i++)
        if (convert(kinds[i], args[3 + i], &a[i]) < 0)
            return NULL;
    if (check_bound() < 0)
        return NULL;
    R r;
    int32_t kind = run(fn, (int)shape, a, &r, hold);
    if (kind != 0)
        return raise_error(kind, &r);
    PyObject *data = r.data ? PyBytes_FromStringAndSize((const char *)r.data, r.len) : Py_NewRef(Py_None);
    free_result(&r);
    if (data == NULL)
        return NULL;
    return Py_BuildValue("NKKK", data, (unsigned long long)r.v[0], (unsigned long long)r.v[1],
                         (unsigned long long)r.v[2]);
}

static PyObject *tid_bytes(uint64_t tid) {
    unsigned char b[8];
    for (int i = 7; i >= 0; i--, tid >>= 8)
        b[i] = (unsigned char)tid;
    return PyBytes_FromStringAndSize((const char *)b, 8);
}

/* load(load_cached_address, load_address, instance, hold, oid[, version]) ->
 * (state, tid): ZODB's load (the version is ignored, as ZODB's storages do);
 * the first four arguments are bound once per instance (functools.partial),
 * so that ZODB's call reaches C with no Python frame. oid is 8 bytes. Unless
 * hold is true, the cached lookup runs with the GIL held (it never waits) and
 * a miss goes to the database with the GIL released; with hold (an in-process
 * database, a read of a few microseconds) the whole load is one call keeping
 * the GIL. */
static PyObject *load(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 5 && nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "load(load_cached_address, load_address, instance, hold, oid[, version])");
        return NULL;
    }
    void *cached = PyLong_AsVoidPtr(args[0]);
    void *fetch = PyLong_AsVoidPtr(args[1]);
    arg a[2];
    a[0].u = PyLong_AsUnsignedLongLongMask(args[2]);
    int hold = PyObject_IsTrue(args[3]);
    if (PyErr_Occurred())
        return NULL;
    char *oid;
    Py_ssize_t len;
    if (!PyBytes_Check(args[4]) || PyBytes_AsStringAndSize(args[4], &oid, &len) < 0 || len != 8) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "oid must be 8 bytes, not %R", args[4]);
        return NULL;
    }
    a[1].u = 0;
    for (int i = 0; i < 8; i++)
        a[1].u = (a[1].u << 8) | (unsigned char)oid[i];
    if (check_bound() < 0)
        return NULL;
    R r;
    int32_t kind;
    if (hold) {
        /* The whole load keeps the GIL: one call, which looks in the cache first. */
        kind = run(fetch, 2, a, &r, 1);
    } else {
        kind = run(cached, 2, a, &r, 1);
        if (kind == 0 && r.v[1] == 0)
            kind = run(fetch, 2, a, &r, 0);
    }
    if (kind != 0)
        return raise_error(kind, &r);
    PyObject *state = PyBytes_FromStringAndSize((const char *)r.data, r.data ? r.len : 0);
    free_result(&r);
    if (state == NULL)
        return NULL;
    return Py_BuildValue("NN", state, tid_bytes(r.v[0]));
}

/* bind(error_factory, fork_error_factory): called once the library is loaded. */
static PyObject *bind(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *err, *fork_err;
    if (!PyArg_ParseTuple(args, "OO", &err, &fork_err))
        return NULL;
    if (error_factory == NULL && pthread_atfork(NULL, NULL, on_fork_child) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
        return NULL;
    }
    Py_XDECREF(error_factory);
    Py_XDECREF(fork_error_factory);
    error_factory = Py_NewRef(err);
    fork_error_factory = Py_NewRef(fork_err);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"call", (PyCFunction)(void (*)(void))call, METH_FASTCALL, "call(address, shape, hold_gil, *args)"},
    {"load", (PyCFunction)(void (*)(void))load, METH_FASTCALL, "load(cached, load, instance, hold, oid[, version])"},
    {"bind", bind, METH_VARARGS, "bind(error_factory, fork_error_factory)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gorelstorage._calls", "Direct calls into the Go engine's exports.", -1, methods,
};

PyMODINIT_FUNC PyInit__calls(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *names = PyTuple_New(sizeof(shapes) / sizeof(shapes[0]) - 1);
    for (Py_ssize_t i = 0; names != NULL && shapes[i] != NULL; i++)
        PyTuple_SetItem(names, i, PyUnicode_FromString(shapes[i]));
    if (names == NULL || PyModule_AddObject(m, "SHAPES", names) < 0) {
        Py_XDECREF(names);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
