/*
 * flags.h — a table-driven parser for "--name value" command lines.
 *
 * Each flag names its destination and type; values are parsed strictly (the whole token
 * must be a number of the right kind), so "--steps 10x" or "--lr abc" is an error that
 * names the flag rather than a silent zero.
 */
#ifndef CHARLM_FLAGS_H
#define CHARLM_FLAGS_H

typedef enum {
    FLAG_INT,
    FLAG_LONG,
    FLAG_FLOAT,
    FLAG_DOUBLE,
    FLAG_U64,
    FLAG_STRING,
    FLAG_BOOL
} FlagType;

typedef struct {
    const char *name; // without the leading "--"
    FlagType type;
    void *dest;
    const char *help; // shown by --help, default included
} Flag;

/* Parses argv[0 .. argc); returns 0, or -1 with a message in err. Sets *help when --help
 * or -h is present. */
int flags_parse(const Flag *flags, int nflags, int argc, char **argv, int *help, char *err);
/* Was the flag given on the command line (after flags_parse)? */
int flags_given(const Flag *flags, int nflags, const char *name);
void flags_print_help(const Flag *flags, int nflags);

#endif
