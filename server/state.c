#include "server.h"

// The one server: configured and loaded by main.c, read by every other part.
Server srv;
