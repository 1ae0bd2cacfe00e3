#include "chat.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "fileio.h"
#include "utf8.h"

#define CHAT_TEMPLATE_MAX_BYTES 65536

static const char *const chat_roles[3] = {"system", "user", "assistant"};
static const char *const chat_placeholders[3] = {"{system}", "{user}", "{assistant}"};

// The built-in template: plain prose turns a char-level model can continue.
static const ChatTemplate chat_builtin = {NULL, {"", "User: ", "Assistant: "}, {"", "", ""}};

static int template_fail(ChatTemplate *t, char *copy) {
    free(copy);
    memset(t, 0, sizeof(*t));
    return -1;
}

int chat_template_parse(const char *text, size_t len, ChatTemplate *t, char *err) {
    memset(t, 0, sizeof(*t));
    if (memchr(text, '\0', len)) return err_set(err, "the template contains a NUL byte");
    if (utf8_find_invalid(text, len) >= 0) return err_set(err, "the template is not valid UTF-8");
    if (len > 0 && text[len - 1] == '\n') len--; // the last line's newline is optional
    char *copy = malloc(len + 1);
    if (!copy) return err_set(err, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    char *line = copy;
    for (int n = 0; line; n++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (n == 3) {
            err_set(err, "the template must be exactly three lines, one per role");
            return template_fail(t, copy);
        }
        int role = -1;
        char *at = NULL;
        for (int k = 0; k < 3; k++) {
            char *p = strstr(line, chat_placeholders[k]);
            if (!p) continue;
            if (role >= 0 || strstr(p + 1, chat_placeholders[k])) {
                err_set(err, "line %d holds more than one placeholder", n + 1);
                return template_fail(t, copy);
            }
            role = k, at = p;
        }
        if (role < 0) {
            err_set(err, "line %d holds none of {system}, {user}, {assistant}", n + 1);
            return template_fail(t, copy);
        }
        if (t->pre[role]) {
            err_set(err, "line %d repeats a role's placeholder", n + 1);
            return template_fail(t, copy);
        }
        *at = '\0';
        t->pre[role] = line;
        t->post[role] = at + strlen(chat_placeholders[role]);
        line = nl ? nl + 1 : NULL;
    }
    for (int k = 0; k < 3; k++)
        if (!t->pre[k]) {
            err_set(err, "the template has no line with %s", chat_placeholders[k]);
            return template_fail(t, copy);
        }
    t->text = copy;
    return 0;
}

int chat_template_load(const char *path, ChatTemplate *t, char *err) {
    char *data = NULL;
    size_t len = 0;
    if (file_read_all(path, CHAT_TEMPLATE_MAX_BYTES, &data, &len, err)) return -1;
    int rc = chat_template_parse(data, len, t, err);
    free(data);
    return rc;
}

void chat_template_free(ChatTemplate *t) {
    free(t->text);
    memset(t, 0, sizeof(*t));
}

// One message's content: a string, or an array of text parts joined as they are.
static int chat_content(const cJSON *c, int i, Buf *b, char *err) {
    if (cJSON_IsString(c)) {
        buf_adds(b, c->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(c))
        return err_set(err, "messages[%d].content must be a string or an array of text parts", i);
    for (const cJSON *part = c->child; part; part = part->next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
            !cJSON_IsString(text) || cJSON_GetArraySize(part) != 2)
            return err_set(err,
                           "messages[%d].content: only parts {\"type\": \"text\", \"text\": ...} "
                           "are supported",
                           i);
        buf_adds(b, text->valuestring);
    }
    return 0;
}

// One message as its role's line with the content in place, into b; -1 with err when it
// is not a message.
static int chat_message(const cJSON *m, int i, const ChatTemplate *t, Buf *b, char *err) {
    if (!cJSON_IsObject(m)) return err_set(err, "messages[%d] must be an object", i);
    const cJSON *role = NULL, *content = NULL;
    for (const cJSON *f = m->child; f; f = f->next) {
        if (strcmp(f->string, "role") == 0)
            role = f;
        else if (strcmp(f->string, "content") == 0)
            content = f;
        else if (!(strcmp(f->string, "name") == 0 && cJSON_IsNull(f))) {
            int n = (int)utf8_cut(f->string, strlen(f->string), 47); // a message's worth
            return err_set(err, "messages[%d]: the field '%.*s' is not supported", i, n, f->string);
        }
    }
    int k = -1;
    for (int j = 0; j < 3 && cJSON_IsString(role); j++)
        if (strcmp(role->valuestring, chat_roles[j]) == 0) k = j;
    if (k < 0) return err_set(err, "messages[%d].role must be system, user or assistant", i);
    if (!content) return err_set(err, "messages[%d] has no content", i);
    buf_adds(b, t->pre[k]);
    if (chat_content(content, i, b, err)) return -1;
    buf_adds(b, t->post[k]);
    buf_adds(b, "\n");
    return 0;
}

int chat_prompt(const cJSON *messages, const ChatTemplate *t, char **prompt, size_t *len,
                char *err) {
    if (!t) t = &chat_builtin;
    if (!cJSON_IsArray(messages) || !messages->child) {
        err_set(err, "messages must be a non-empty array of messages");
        return CHAT_BAD;
    }
    Buf b = {0};
    int i = 0;
    for (const cJSON *m = messages->child; m; m = m->next, i++)
        if (chat_message(m, i, t, &b, err)) {
            buf_free(&b);
            return CHAT_BAD;
        }
    buf_adds(&b, t->pre[2]);
    if (b.failed) {
        buf_free(&b);
        return CHAT_NOMEM;
    }
    *prompt = b.s;
    *len = b.len;
    return 0;
}

size_t chat_default_stop(const ChatTemplate *t, char *out, size_t cap) {
    if (!t) t = &chat_builtin;
    size_t n = strlen(t->pre[1]);
    while (n > 0 && t->pre[1][n - 1] == ' ') n--;
    if (n == 0 || n + 2 > cap) return 0;
    out[0] = '\n';
    memcpy(out + 1, t->pre[1], n);
    out[n + 1] = '\0';
    return n + 1;
}
