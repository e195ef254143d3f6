// cli/eval_shards.h: dataset/'s shard reader as eval/'s EvalShardReader, so pmf_eval (and the
// tests) score shards through the one reader of that format while eval/ and dataset/ stay apart.
#ifndef PMF_CLI_EVAL_SHARDS_H
#define PMF_CLI_EVAL_SHARDS_H

#include "eval/eval.h"

// A reader without state (ctx NULL), shared by every caller; do not free.
const EvalShardReader *cli_eval_shard_reader(void);

#endif
