/* `ordertrack statements`: see stmtcli.h. */
#include "ot/cmd/stmtcli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/cmd/app.h"
#include "ot/codec/json_write.h"

int ot_stmt_cli_main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr,
                "usage: ordertrack statements\n"
                "Prints every SQL statement the server prepares on its PostgreSQL connections, one JSON object\n"
                "per line: {\"name\",\"params\",\"readonly\",\"sql\"} (EXPLAIN EXECUTE them after PREPARE).\n");
        return argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : 2;
    }
    size_t n = 0;
    ot_pg_stmt *st = ot_app_pool_stmts(&n);
    if (!st)
        return 1;
    ot_buf out = OT_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        ot_jw w;
        ot_buf_reset(&out);
        ot_jw_init(&w, &out);
        ot_jw_obj_open(&w);
        ot_jw_key(&w, "name");
        ot_jw_cstr(&w, st[i].name);
        ot_jw_key(&w, "params");
        ot_jw_int(&w, st[i].nparams);
        ot_jw_key(&w, "readonly");
        ot_jw_bool(&w, st[i].readonly);
        ot_jw_key(&w, "sql");
        ot_jw_cstr(&w, st[i].sql);
        ot_jw_obj_close(&w);
        if (ot_jw_error(&w) || fwrite(out.data, 1, out.len, stdout) != out.len || putchar('\n') == EOF)
            rc = 1;
    }
    ot_buf_free(&out);
    free(st);
    return fflush(stdout) == 0 ? rc : 1;
}
