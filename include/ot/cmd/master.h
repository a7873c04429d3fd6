/* `ordertrack serve`: a master process that forks one worker per core,
 * restarts workers that die, and on SIGTERM drains them and exits 0. */
#ifndef OT_MASTER_H
#define OT_MASTER_H

#include "ot/core/config.h"

int ot_master_main(const ot_config *cfg);

#endif
