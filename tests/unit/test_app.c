/* The worker's wiring (src/cmd/app.c): the pool's statement table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "ot/api/auth.h"
#include "ot/api/orders.h"
#include "ot/app/events.h"
#include "ot/app/hub.h"
#include "ot/app/hub_msg.h"
#include "ot/app/replay.h"
#include "ot/cmd/app.h"

/* The table was a fixed 64 entries and silently dropped the rest. */
Test(app_stmts, table_is_sized_from_the_modules_and_keeps_every_statement)
{
    enum { G = 3, PER = 40 };
    static ot_pg_stmt tabs[G][PER];
    static char names[G][PER][32];
    const ot_pg_stmt *groups[G];
    size_t counts[G];
    for (int g = 0; g < G; g++) {
        for (int i = 0; i < PER; i++) {
            snprintf(names[g][i], sizeof(names[g][i]), "s_%d_%d", g, i);
            tabs[g][i] = (ot_pg_stmt){ names[g][i], "SELECT 1", 0, true };
        }
        groups[g] = tabs[g];
        counts[g] = PER;
    }
    size_t n = 0;
    ot_pg_stmt *all = ot_app_stmts(groups, counts, G, &n);
    cr_assert_not_null(all);
    cr_assert_eq(n, (size_t)(G * PER));
    cr_assert_str_eq(all[0].name, "s_0_0");
    cr_assert_str_eq(all[G * PER - 1].name, "s_2_39");
    free(all);
}

Test(app_stmts, a_name_declared_twice_fails_loudly)
{
    ot_pg_stmt a[] = { { "dup", "SELECT 1", 0, true } }, b[] = { { "dup", "SELECT 2", 0, true } };
    const ot_pg_stmt *groups[] = { a, b };
    size_t counts[] = { 1, 1 }, n = 99;
    cr_assert_null(ot_app_stmts(groups, counts, 2, &n));
}

Test(app_stmts, the_real_modules_fit_and_do_not_collide)
{
    const ot_pg_stmt *groups[] = { ot_auth_stmts, ot_orders_stmts, ot_events_stmts, ot_hub_msg_stmts, ot_replay_stmts };
    size_t counts[] = { ot_auth_nstmts, ot_orders_nstmts, ot_events_nstmts, ot_hub_msg_nstmts, ot_replay_nstmts };
    size_t n = 0;
    ot_pg_stmt *all = ot_app_stmts(groups, counts, OT_ARRAY_LEN(groups), &n);
    cr_assert_not_null(all);
    cr_assert_eq(n, ot_auth_nstmts + ot_orders_nstmts + ot_events_nstmts + ot_hub_msg_nstmts + ot_replay_nstmts);
    free(all);
}
