/*
 * chat.h — how OpenAI's chat messages become the prompt of a char model, by a template:
 * the built-in one, or a --chat-template file checked at startup.
 *
 * A template is three lines, one per role, each holding its placeholder ({system},
 * {user}, {assistant}) once. A message is its role's line with the placeholder replaced
 * by its content, then "\n"; the prompt is the messages in order, then the assistant
 * line's text before {assistant}. docs/API.md states the built-in one. Pure: no server
 * state; the request's other fields and limits are api.h's.
 */
#ifndef CHARLM_CHAT_H
#define CHARLM_CHAT_H

#include <stddef.h>

typedef struct ChatTemplate {
    char *text;                   // owned (NULL for the built-in); pre/post point into it
    const char *pre[3], *post[3]; // by role: system, user, assistant
} ChatTemplate;

/* Checks and splits a template's text into t; on failure t is empty and err says which
 * line is wrong. */
int chat_template_parse(const char *text, size_t len, ChatTemplate *t, char *err);
/* chat_template_parse of a file's bytes (at most 64 KiB). */
int chat_template_load(const char *path, ChatTemplate *t, char *err);
void chat_template_free(ChatTemplate *t);

/* chat_prompt's failures: the messages are not valid, or memory ran out. */
enum { CHAT_BAD = -1, CHAT_NOMEM = -2 };

/* messages (the request's array of {role, content}; content a string or an array of
 * {"type": "text", "text": ...} parts) made into a prompt by t (NULL: the built-in one):
 * *prompt malloc'd and NUL-terminated, *len bytes. Returns 0, CHAT_BAD with err naming the
 * message at fault and what is wrong with it, or CHAT_NOMEM. */
struct cJSON;
int chat_prompt(const struct cJSON *messages, const ChatTemplate *t, char **prompt, size_t *len,
                char *err);

/* Where a reply stops unless the request names its own stops: where the model starts the
 * user's next turn, "\n" and t's user line before {user} with trailing spaces dropped.
 * Written into out; returns its length, 0 when there is none (a user line that starts
 * with its placeholder) or it needs more than cap - 1 bytes. */
size_t chat_default_stop(const ChatTemplate *t, char *out, size_t cap);

#endif
