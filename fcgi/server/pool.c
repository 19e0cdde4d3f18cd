/* pool: shared counters of one node's workers (see pool.h). */
#include "server/pool.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include "lib/log.h"

struct pool_shared {
    atomic_int bodies;                      /* workers receiving a body */
    atomic_uchar holding[POOL_SLOTS];       /* which slot holds one */
    atomic_uchar alive[POOL_SLOTS];         /* a worker runs in the slot */
    atomic_uchar busy[POOL_SLOTS];          /* ... and serves a request */
};

static struct pool_shared *shared;
static int my_slot = -1;
static bool holding;

bool pool_init(void)
{
    void *p = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_warn("cannot map the workers' shared counters; body_workers is not enforced");
        return false;
    }
    memset(p, 0, sizeof *shared);
    shared = p;
    return true;
}

void pool_slot_gone(int slot)
{
    if (!shared || slot < 0 || slot >= POOL_SLOTS)
        return;
    if (atomic_exchange(&shared->holding[slot], 0))
        atomic_fetch_sub(&shared->bodies, 1);
    atomic_store(&shared->busy[slot], 0);
    atomic_store(&shared->alive[slot], 0);
}

void pool_worker_attach(int slot)
{
    my_slot = slot >= 0 && slot < POOL_SLOTS ? slot : -1;
    holding = false;
    if (shared && my_slot >= 0) {
        atomic_store(&shared->busy[my_slot], 0);
        atomic_store(&shared->alive[my_slot], 1);
    }
}

void pool_busy(bool busy)
{
    if (shared && my_slot >= 0)
        atomic_store(&shared->busy[my_slot], busy ? 1 : 0);
}

void pool_counts(int *alive, int *busy, int *bodies)
{
    *alive = *busy = *bodies = 0;
    if (!shared)
        return;
    for (int i = 0; i < POOL_SLOTS; i++) {
        if (!atomic_load(&shared->alive[i]))
            continue;
        ++*alive;
        if (atomic_load(&shared->busy[i]))
            ++*busy;
    }
    *bodies = atomic_load(&shared->bodies);
}

int pool_body_limit(const struct config *cfg)
{
    if (cfg->body_workers > 0)
        return cfg->body_workers;
    if (cfg->workers <= 1)
        return 1;
    int keep = cfg->workers / 4 > 0 ? cfg->workers / 4 : 1;
    return cfg->workers - keep;
}

bool pool_body_begin(const struct config *cfg)
{
    if (holding || !shared || my_slot < 0)
        return true;
    int limit = pool_body_limit(cfg);
    int n = atomic_load(&shared->bodies);
    do {
        if (n >= limit)
            return false;
    } while (!atomic_compare_exchange_weak(&shared->bodies, &n, n + 1));
    atomic_store(&shared->holding[my_slot], 1);
    holding = true;
    return true;
}

void pool_body_end(void)
{
    if (!holding)
        return;
    holding = false;
    if (atomic_exchange(&shared->holding[my_slot], 0))
        atomic_fetch_sub(&shared->bodies, 1);
}
