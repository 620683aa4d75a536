/* One YAML document -> its value and the offsets of its nodes, built straight from libyaml's
 * events.
 *
 * Why this exists: PyYAML's C loader makes a Python node, two marks and a resolver call for
 * every node before the value is built, which is most of discovery's time on workload YAML.
 * This module builds the value directly, and beside it the compact position tree
 * kubenb/discover/positions.py reads lines from.
 *
 * It handles the shapes manifests are made of: untagged scalars, sequences and mappings with
 * scalar keys. Anything else (a tag, an anchor or alias, a merge key "<<" or "=", a key that is
 * a collection, directives, a second document, any syntax error, nesting deeper than
 * MAX_DEPTH) returns NotImplemented, and the caller composes the document with PyYAML, which
 * stays the reference for YAML 1.1 and gives the errors. So this module never has to be right
 * about the rare cases: it only has to recognise them.
 *
 * Plain scalars are resolved as PyYAML's safe loader resolves them: a text that may be a
 * bool or null is decided here from the exact word lists of PyYAML's resolver; a text that may
 * be a number or a timestamp (it starts with a digit or ".", after an optional sign) is handed
 * to the `resolve` callable given by the caller; every other plain scalar is a string.
 *
 * The position tree: a scalar is an int, (start offset << 1) | 1 when it is a literal block
 * ("|"); a sequence is a list [offset code, item positions...]; a mapping is a tuple
 * (offset code, {key: value position}). Offsets are libyaml's mark indexes, as PyYAML's nodes
 * carry them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 200

typedef struct {
    PyObject *value; /* the list or dict being filled */
    PyObject *places; /* the list or dict its positions go into */
    PyObject *tree;  /* the node's position: `places` itself for a list, (code, places) for a dict */
    PyObject *key;   /* a mapping's pending key; NULL when the next node is a key */
    int is_mapping;
} Frame;

typedef enum { BUILT, NOT_HANDLED, FAILED } Outcome;

static int word_is(const char *text, size_t length, const char *const *words) {
    for (; *words; words++) {
        if (strlen(*words) == length && memcmp(*words, text, length) == 0)
            return 1;
    }
    return 0;
}

/* PyYAML's resolver: these words, exactly, are bools and nulls ("" is null too). */
static const char *const TRUE_WORDS[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", NULL};
static const char *const FALSE_WORDS[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", NULL};
static const char *const NULL_WORDS[] = {"~", "null", "Null", "NULL", NULL};

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Whether the callback's error only means "PyYAML should read this" (a bad timestamp, say). */
static Outcome after_error(void) {
    if (PyErr_ExceptionMatches(PyExc_Exception) && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyErr_Clear();
        return NOT_HANDLED;
    }
    return FAILED; /* KeyboardInterrupt, MemoryError: the caller must see them */
}

/* The value of a plain scalar, a new reference; NULL with *outcome set when not built. */
static PyObject *plain_value(const char *text, size_t length, PyObject *resolve, Outcome *outcome) {
    if (length == 0 || word_is(text, length, NULL_WORDS))
        Py_RETURN_NONE;
    if (word_is(text, length, TRUE_WORDS))
        Py_RETURN_TRUE;
    if (word_is(text, length, FALSE_WORDS))
        Py_RETURN_FALSE;
    if ((length == 2 && text[0] == '<' && text[1] == '<') || (length == 1 && text[0] == '=')) {
        *outcome = NOT_HANDLED; /* merge and value keys: PyYAML's constructor has rules for them */
        return NULL;
    }
    PyObject *written = PyUnicode_DecodeUTF8(text, (Py_ssize_t)length, "strict");
    if (written == NULL) {
        *outcome = after_error();
        return NULL;
    }
    size_t first = (text[0] == '-' || text[0] == '+') ? 1 : 0;
    if (first >= length || !(is_digit(text[first]) || text[first] == '.'))
        return written; /* text: no number or timestamp starts so */
    PyObject *resolved = PyObject_CallOneArg(resolve, written); /* a number, a timestamp or text */
    Py_DECREF(written);
    if (resolved == NULL)
        *outcome = after_error();
    return resolved;
}

static PyObject *offset_code(const yaml_mark_t *mark, int literal) {
    return PyLong_FromSize_t((mark->index << 1) | (literal ? 1u : 0u));
}

static void clear_frame(Frame *frame) {
    Py_CLEAR(frame->value);
    Py_CLEAR(frame->tree);
    Py_CLEAR(frame->key);
}

static Outcome open_frame(Frame *frame, int is_mapping, const yaml_mark_t *mark) {
    frame->is_mapping = is_mapping;
    frame->key = NULL;
    frame->value = is_mapping ? PyDict_New() : PyList_New(0);
    frame->places = is_mapping ? PyDict_New() : PyList_New(0);
    PyObject *code = offset_code(mark, 0);
    frame->tree = NULL;
    if (frame->value != NULL && frame->places != NULL && code != NULL) {
        if (is_mapping)
            frame->tree = PyTuple_Pack(2, code, frame->places);
        else if (PyList_Append(frame->places, code) == 0)
            frame->tree = Py_NewRef(frame->places);
    }
    Py_XDECREF(code);
    Py_XDECREF(frame->places); /* the tree holds it now */
    if (frame->tree == NULL) {
        Py_CLEAR(frame->value);
        return FAILED;
    }
    return BUILT;
}

/* Puts a finished node into the frame on top (references stolen). */
static Outcome attach(Frame *top, PyObject *value, PyObject *position) {
    Outcome outcome = BUILT;
    if (!top->is_mapping) {
        if (PyList_Append(top->value, value) < 0 || PyList_Append(top->places, position) < 0)
            outcome = FAILED;
    } else if (top->key == NULL) {
        top->key = Py_NewRef(value); /* a scalar (a collection key is refused when it opens) */
    } else {
        if (PyDict_SetItem(top->value, top->key, value) < 0 || PyDict_SetItem(top->places, top->key, position) < 0)
            outcome = FAILED; /* keys are scalars, all hashable: only memory can fail here */
        Py_CLEAR(top->key);
    }
    Py_DECREF(value);
    Py_DECREF(position);
    return outcome;
}

/* One event into the tree; BUILT means "go on". */
static Outcome take(yaml_event_t *event, Frame *stack, int *depth, int *documents, PyObject *resolve,
                    PyObject **root_value, PyObject **root_tree) {
    PyObject *value = NULL, *position = NULL;
    Outcome outcome = BUILT;
    switch (event->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1 || event->data.document_start.version_directive != NULL ||
            event->data.document_start.tag_directives.start != event->data.document_start.tag_directives.end)
            return NOT_HANDLED;
        return BUILT;
    case YAML_ALIAS_EVENT:
        return NOT_HANDLED;
    case YAML_SCALAR_EVENT: {
        if (event->data.scalar.tag != NULL || event->data.scalar.anchor != NULL)
            return NOT_HANDLED;
        const char *text = (const char *)event->data.scalar.value;
        size_t length = event->data.scalar.length;
        if (event->data.scalar.plain_implicit)
            value = plain_value(text, length, resolve, &outcome);
        else if ((value = PyUnicode_DecodeUTF8(text, (Py_ssize_t)length, "strict")) == NULL)
            outcome = after_error();
        if (value == NULL)
            return outcome;
        position = offset_code(&event->start_mark, event->data.scalar.style == YAML_LITERAL_SCALAR_STYLE);
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_mapping = event->type == YAML_MAPPING_START_EVENT;
        yaml_char_t *tag = is_mapping ? event->data.mapping_start.tag : event->data.sequence_start.tag;
        yaml_char_t *anchor = is_mapping ? event->data.mapping_start.anchor : event->data.sequence_start.anchor;
        if (tag != NULL || anchor != NULL || *depth == MAX_DEPTH)
            return NOT_HANDLED;
        if (*depth > 0 && stack[*depth - 1].is_mapping && stack[*depth - 1].key == NULL)
            return NOT_HANDLED; /* a collection as a key */
        outcome = open_frame(&stack[*depth], is_mapping, &event->start_mark);
        if (outcome == BUILT)
            ++*depth;
        return outcome;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        Frame *frame = &stack[--*depth];
        value = frame->value;
        position = frame->tree;
        frame->value = frame->tree = NULL;
        Py_CLEAR(frame->key);
        break;
    }
    default: /* stream start and end, document end */
        return BUILT;
    }
    if (position == NULL) {
        Py_DECREF(value);
        return FAILED;
    }
    if (*depth > 0)
        return attach(&stack[*depth - 1], value, position);
    *root_value = value;
    *root_tree = position;
    return BUILT;
}

static Outcome build(yaml_parser_t *parser, PyObject *resolve, PyObject **root_value, PyObject **root_tree) {
    Frame stack[MAX_DEPTH];
    int depth = 0, documents = 0;
    Outcome outcome = BUILT;
    yaml_event_t event;
    for (;;) {
        if (!yaml_parser_parse(parser, &event)) {
            outcome = NOT_HANDLED; /* PyYAML parses it again and reports the error */
            break;
        }
        int ended = event.type == YAML_STREAM_END_EVENT;
        outcome = take(&event, stack, &depth, &documents, resolve, root_value, root_tree);
        yaml_event_delete(&event);
        if (outcome != BUILT || ended)
            break;
    }
    while (depth > 0)
        clear_frame(&stack[--depth]);
    if (outcome != BUILT) {
        Py_CLEAR(*root_value);
        Py_CLEAR(*root_tree);
    } else if (*root_value == NULL) { /* a stream without a document */
        *root_value = Py_NewRef(Py_None);
        *root_tree = Py_NewRef(Py_None);
    }
    return outcome;
}

static PyObject *load(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "load(text: str, resolve: callable)");
        return NULL;
    }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(args[0], &size);
    if (utf8 == NULL) { /* a lone surrogate: PyYAML reports it */
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return PyErr_NoMemory();
    yaml_parser_set_input_string(&parser, (const unsigned char *)utf8, (size_t)size);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    PyObject *value = NULL, *positions = NULL;
    Outcome outcome = build(&parser, args[1], &value, &positions);
    yaml_parser_delete(&parser);
    if (outcome == FAILED)
        return NULL;
    if (outcome == NOT_HANDLED)
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *pair = PyTuple_Pack(2, value, positions);
    Py_DECREF(value);
    Py_DECREF(positions);
    return pair;
}

static PyObject *libyaml_version(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyUnicode_FromString(yaml_get_version_string());
}

static PyMethodDef methods[] = {
    {"libyaml_version", libyaml_version, METH_NOARGS, "The version of the libyaml this module runs on."},
    {"load", (PyCFunction)(void (*)(void))load, METH_FASTCALL,
     "load(text, resolve) -> (value, positions), or NotImplemented for PyYAML to compose."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "kubenb.discover._yaml_values",
    "A document's value and node offsets from libyaml's events (see the C source's header).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__yaml_values(void) { return PyModule_Create(&definition); }
