/* qmp/shell.c and qmp/schema.c: the console's parsing and completion. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qmp/qmp.h"

/* Parses line and compares the result with the expected JSON text. */
static void expect(const char *line, const char *json)
{
    json_t *got = qmp_shell_parse(line), *want = json_loads(json, 0, NULL);

    assert_non_null(want);
    if (!got || !json_equal(got, want)) {
        char *g = got ? json_dumps(got, 0) : NULL;
        print_error("line: %s\n got: %s\nwant: %s\n", line, g ? g : "NULL", json);
        free(g);
        fail();
    }
    json_decref(got);
    json_decref(want);
}

static void shorthand(void **state)
{
    (void)state;
    expect("query-status", "{\"execute\": \"query-status\"}");
    expect("  query-status  ", "{\"execute\": \"query-status\"}");
    expect("blockdev-mirror job-id=m0 device=disk0 sync=full",
           "{\"execute\": \"blockdev-mirror\", \"arguments\": "
           "{\"job-id\": \"m0\", \"device\": \"disk0\", \"sync\": \"full\"}}");
    expect("c a=12 b=-3 c=1.5 d=true e=false f=null g=\"12\" h='x y' i=0x10 j=010",
           "{\"execute\": \"c\", \"arguments\": {\"a\": 12, \"b\": -3, \"c\": 1.5,"
           " \"d\": true, \"e\": false, \"f\": null, \"g\": \"12\", \"h\": \"x y\","
           " \"i\": \"0x10\", \"j\": 10}}");
    expect("blockdev-add driver=qcow2 node-name=n file.driver=file file.filename=/x",
           "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"qcow2\","
           " \"node-name\": \"n\", \"file\": {\"driver\": \"file\", \"filename\": \"/x\"}}}");
    expect("c a.b.c=1 a.b.d=2 a.e=3",
           "{\"execute\": \"c\", \"arguments\": {\"a\": {\"b\": {\"c\": 1, \"d\": 2}, \"e\": 3}}}");
    expect("c opts={\"x\": [1, 2], \"y\": \"a b\"} l=[ 1, 2 ]",
           "{\"execute\": \"c\", \"arguments\": {\"opts\": {\"x\": [1, 2], \"y\": \"a b\"},"
           " \"l\": [1, 2]}}");
    expect("c s=\"a \\\"q\\\" b\" eq=a=b empty=",
           "{\"execute\": \"c\", \"arguments\": {\"s\": \"a \\\"q\\\" b\", \"eq\": \"a=b\","
           " \"empty\": \"\"}}");
    expect("c x=-inf y=nan", "{\"execute\": \"c\", \"arguments\": {\"x\": \"-inf\", \"y\": \"nan\"}}");
    expect("{\"execute\": \"query-block\", \"arguments\": {\"a\": 1}}",
           "{\"execute\": \"query-block\", \"arguments\": {\"a\": 1}}");
}

static void errors(void **state)
{
    const char *bad[] = {
        "", "   ", "c novalue", "c a=1 a=2", "c a=1 a.b=2", "c a.b=1 a=2",
        "c .a=1", "c a..b=1", "c =1", "c s=\"open", "c j={\"a\": ", "c j={bad}",
        "{\"no\": \"execute\"}", "{broken", NULL,
    };

    (void)state;
    for (int i = 0; bad[i]; i++) {
        json_t *j = qmp_shell_parse(bad[i]);

        if (j) {
            print_error("accepted: '%s'\n", bad[i]);
            fail();
        }
    }
}

static const char schema_text[] =
    "[{\"name\": \"blockdev-mirror\", \"meta-type\": \"command\", \"arg-type\": \"1\"},"
    " {\"name\": \"query-status\", \"meta-type\": \"command\", \"arg-type\": \"0\"},"
    " {\"name\": \"0\", \"meta-type\": \"object\", \"members\": []},"
    " {\"name\": \"1\", \"meta-type\": \"object\", \"members\": ["
    "   {\"name\": \"job-id\", \"type\": \"str\"}, {\"name\": \"device\", \"type\": \"str\"},"
    "   {\"name\": \"opts\", \"type\": \"2\"}],"
    "  \"tag\": \"sync\", \"variants\": [{\"case\": \"full\", \"type\": \"3\"}]},"
    " {\"name\": \"2\", \"meta-type\": \"object\", \"members\": [{\"name\": \"x\", \"type\": \"int\"}]},"
    " {\"name\": \"3\", \"meta-type\": \"object\", \"members\": [{\"name\": \"speed\", \"type\": \"int\"}]},"
    " {\"name\": \"str\", \"meta-type\": \"builtin\"}]";

static void schema(void **state)
{
    json_t *s = json_loads(schema_text, 0, NULL), *names, *want;

    (void)state;
    assert_non_null(s);
    names = qmp_schema_arg_names(s, "blockdev-mirror", 4);
    want = json_loads("[\"job-id\", \"device\", \"opts\", \"opts.x\", \"speed\"]", 0, NULL);
    assert_true(json_equal(names, want));
    json_decref(names);
    json_decref(want);
    names = qmp_schema_arg_names(s, "blockdev-mirror", 1);
    assert_int_equal(json_array_size(names), 4);
    json_decref(names);
    names = qmp_schema_arg_names(s, "query-status", 4);
    assert_int_equal(json_array_size(names), 0);
    json_decref(names);
    names = qmp_schema_arg_names(s, "no-such-command", 4);
    assert_int_equal(json_array_size(names), 0);
    json_decref(names);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shorthand),
        cmocka_unit_test(errors),
        cmocka_unit_test(schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
