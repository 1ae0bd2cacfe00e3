/*
 * static.h — the web page and its assets, served from one folder.
 */
#ifndef CHARLM_STATIC_H
#define CHARLM_STATIC_H

#include "http.h"

/* Finds the page folder: $CHARLM_STATIC_DIR, ./static, <exe>/../static,
 * /usr/share/charlm/static. Fails only when CHARLM_STATIC_DIR names no folder. */
int static_init(char *err);
/* GET / and /index.html: the page. */
enum MHD_Result static_index(struct MHD_Connection *conn, Request *rq);
/* GET /static/<name>: an asset, <name> taken from rq->tail. */
enum MHD_Result static_asset(struct MHD_Connection *conn, Request *rq);
/* 1 for a name that may be looked up in the folder: segments of [A-Za-z0-9._-] that do
 * not start with a dot, joined by single slashes, 200 bytes at most. */
int static_name_ok(const char *rel);

#endif
