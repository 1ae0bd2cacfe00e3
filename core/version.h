/*
 * version.h — the version of this build, for --version and GET /health.
 *
 * cmake/version.cmake writes its definition at every build: `git describe --always
 * --dirty` of the source tree (e.g. "v0.5.0-3-g1a2b3c4-dirty", or a bare commit hash
 * without tags), or the top-level VERSION file when the tree is not a git checkout.
 */
#ifndef CHARLM_VERSION_H
#define CHARLM_VERSION_H

extern const char charlm_version[];

#endif
