/*
 * progress.h — training progress on stderr: a live one-line bar on a terminal, plain
 * periodic lines when stderr is a file or a pipe (logs stay readable).
 */
#ifndef CHARLM_PROGRESS_H
#define CHARLM_PROGRESS_H

typedef struct {
    int tty;
    long total;
    long every; // plain mode: print every this many steps
} Progress;

void progress_init(Progress *p, long total, long every);
/* val_loss < 0 means "not evaluated yet". With a --max-time budget, budget_share is the
 * part of it spent (it moves the bar when ahead of the steps) and budget_left the
 * training time it has left, which bounds the ETA; budget_left < 0: no budget. */
void progress_update(Progress *p, long step, float loss, double val_loss, double tokens_per_s,
                     double elapsed_s, double budget_share, double budget_left);
/* Ends the live line so later messages start on a fresh line. */
void progress_finish(Progress *p);

#endif
