/*
 * jsonscan.h — what cJSON's tree of a request body does not keep, read from the body's
 * bytes: the text of each member of the top-level object, whether a string held a
 * \u0000 (cJSON cuts the string there and carries on), an integer exactly as it is
 * written (cJSON keeps a double, which takes 2^53 + 1 for 2^53), and the field a NaN or
 * Infinity stood in (cJSON only says where it stopped). And the rule for a field given
 * twice: its last value counts.
 *
 * Pure: no allocation but jsonscan_parse's tree, and no read past the bytes given (and,
 * for jsonscan_parse and jsonscan_nonfinite_key, the NUL the caller keeps after them).
 */
#ifndef CHARLM_JSONSCAN_H
#define CHARLM_JSONSCAN_H

#include <stddef.h>

/* cJSON's tree of body[0, len), where body[len] is a NUL (http.c keeps one), so that
 * nothing may follow the value; NULL when the body is not JSON or memory ran out, told
 * apart by *nomem (1: out of memory). *end (when end is not NULL): where cJSON stopped. */
struct cJSON;
struct cJSON *jsonscan_parse(const char *body, size_t len, const char **end, int *nomem);

/* One member of an object, as text: [key, key_end) the key with its quotes, [val,
 * val_end) the value. */
typedef struct {
    const char *key, *key_end;
    const char *val, *val_end;
} JsonMember;

/* The walk over the top-level object of body[0, len), JSON that cJSON accepted as an
 * object: the cursor to hand jsonscan_next, just inside the '{'. */
const char *jsonscan_begin(const char *body, size_t len);
/* The member after *cursor into m, in cJSON's order of children; 0 at the object's end
 * (or where the text is not JSON after all). end: the body's end. */
int jsonscan_next(const char **cursor, const char *end, JsonMember *m);

/* Whether JSON text [p, end) (a string, or a value holding strings) decodes to
 * something holding a NUL. */
int jsonscan_has_nul(const char *p, const char *end);

/* A JSON number's text [p, end) as an integer: 0 with *out set when it is one (7.0, 7e0
 * and 70e-1 are 7; -0 is 0), -1 when it is not. *out is the integer when a double holds it
 * exactly, else the next double away from zero, and +-DBL_MAX past 2^64: so a range check
 * on *out with bounds within 2^64 decides as it would on the exact value (the seed's
 * 2^53 + 1 stays above 2^53). */
int jsonscan_integer(const char *p, const char *end, double *out);

/* When cJSON stopped at `at` in body[0, len) (body[len] a NUL) because the value there
 * is NaN or Infinity (not JSON): 1 with the field's name in key, else 0 (also for a name
 * that has escapes or does not fit in cap bytes: it is only for a message). */
int jsonscan_nonfinite_key(const char *body, size_t len, const char *at, char *key, size_t cap);

/* The member of object o named name: the last one, since a field given twice takes its
 * last value (api_parse reads them in order, so the last one stays). NULL when there is
 * none or o is not an object. */
const struct cJSON *jsonscan_member(const struct cJSON *o, const char *name);

#endif
