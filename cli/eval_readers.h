// cli/eval_readers.h: dataset/'s shard reader and PNG decoder as eval/'s EvalReaders, so pmf_eval
// (and the tests) read shards and folders of PNGs through the one reader of each format while
// eval/ and dataset/ stay apart.
#ifndef PMF_CLI_EVAL_READERS_H
#define PMF_CLI_EVAL_READERS_H

#include "eval/eval.h"

// Readers without state (ctx NULL), shared by every caller; do not free.
const EvalReaders *cli_eval_readers(void);

#endif
