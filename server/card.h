/*
 * card.h — a model's card: the GET /model body (its id, configuration, training summary
 * and curve from train_log.jsonl, the vocabulary, the generation defaults and limits this
 * server applies), built once when the model is loaded, and the members /health and
 * /v1/models share with it.
 *
 * It takes the loaded pieces, not the registry's ServedModel: info.c's hook builds it when
 * the registry (models.c, which includes none of this) has loaded a model.
 */
#ifndef CHARLM_CARD_H
#define CHARLM_CARD_H

#include <cjson/cJSON.h>

#include "artefacts.h"

/* The card as JSON text (malloc'd); NULL with err set when out of memory. dir is the
 * model's folder, where its train_log.jsonl is read (a missing log is an empty curve). */
char *card_build(const char *id, const char *dir, const Model *model, const Vocab *vocab,
                 const ModelInfo *info, char *err);
/* The architecture's name ("arch"), vocab_size, its hyperparameters (Arch.fields),
 * parameters and memory_per_stream (Arch.state_bytes) of model, added to o. */
void card_add_config(cJSON *o, const Model *model);
/* v, or null when it is not finite (a model never evaluated has no best loss). */
void card_add_number(cJSON *o, const char *name, double v);

#endif
