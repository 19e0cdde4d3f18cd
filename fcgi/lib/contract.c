/* contract: what happens when a stated precondition does not hold. */
#include "lib/contract.h"

#include <stdlib.h>
#include "lib/log.h"

void pier_assert_fail(const char *cond, const char *file, int line, const char *func)
{
    log_error("contract broken: %s (%s:%d, %s)", cond, file, line, func);
    abort();
}
