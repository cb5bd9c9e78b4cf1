/* ituna/ituna.h - umbrella header: include this one. */
#ifndef ITUNA_H
#define ITUNA_H

#include "ituna/common.h"
#include "ituna/config.h"
#include "ituna/trace.h"
#include "ituna/propagate.h"
#include "ituna/kafka.h"
#include "ituna/json.h"
#include "ituna/host.h"

#endif
