/* SPDX-License-Identifier: MIT */
/*
 * test_s3config.c: the S3 settings (lib/backup/s3config.c) as the AWS CLI
 * reads them: s3:// names, the environment, profiles in the credentials and
 * config files (sections, comments, nested "s3 =" settings), precedence,
 * endpoint checks and addressing style; plus the object keys of store paths
 * and the XML reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backup/s3chain.h"
#include "backup/s3client.h"
#include "backup/s3config.h"
#include "backup/s3xml.h"
#include "testutil.h"
#include "base/util.h"

static const char *vars[] = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                              "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                              "AWS_CA_BUNDLE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE" };
static char *dir;

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    dir = tu_mkdtemp();
    setenv("HOME", dir, 1);
    ddp_s3_config_set_endpoint(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    free(dir);
    ddp_s3_config_set_endpoint(NULL);
    return 0;
}

static void put(const char *rel, const char *text)
{
    char *p = ddp_path_join(dir, rel);
    tu_write_file(p, text, strlen(text));
    free(p);
}

static void test_urls(void **state)
{
    (void)state;
    char *b, *p;
    assert_int_equal(ddp_s3_parse_url("s3://my-bucket/a/b/", &b, &p), S_OK);
    assert_string_equal(b, "my-bucket");
    assert_string_equal(p, "a/b");
    free(b);
    free(p);
    assert_int_equal(ddp_s3_parse_url("s3://my.bucket", &b, &p), S_OK);
    assert_string_equal(p, "");
    free(b);
    free(p);
    assert_int_equal(ddp_s3_parse_url("s3://ab/x", &b, &p), E_INVALIDARG);      /* too short */
    assert_int_equal(ddp_s3_parse_url("s3://bu ck/x", &b, &p), E_INVALIDARG);   /* a space */
    assert_int_equal(ddp_s3_parse_url("s3://bucket/a//b", &b, &p), E_INVALIDARG);
    assert_int_equal(ddp_s3_parse_url("s3://bucket/a/../b", &b, &p), E_INVALIDARG);
    assert_int_equal(ddp_s3_parse_url("/local/dir", &b, &p), E_INVALIDARG);
    assert_null(b);
    assert_true(ddp_s3_is_url("s3://x"));
    assert_false(ddp_s3_is_url("S3:/x"));
}

static void test_environment(void **state)
{
    (void)state;
    ddp_s3_config c;
    assert_int_equal(ddp_s3_config_load(&c), HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)); /* no credentials anywhere */
    assert_non_null(strstr(ddp_error_detail(), "no credentials"));
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
    setenv("AWS_SESSION_TOKEN", "TOK", 1);
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.access_key, "AKENV");
    assert_string_equal(c.session_token, "TOK");
    assert_string_equal(c.region, "us-east-1");
    assert_string_equal(c.endpoint, "https://s3.us-east-1.amazonaws.com");
    assert_true(c.https);
    assert_false(ddp_s3_config_path_style(&c, "my-bucket"));
    assert_true(ddp_s3_config_path_style(&c, "my.bucket")); /* not a DNS label for TLS */
    ddp_s3_config_free(&c);
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7480/", 1);
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.region, "eu-west-1");
    assert_string_equal(c.endpoint, "http://127.0.0.1:7480");
    assert_string_equal(c.host, "127.0.0.1:7480");
    assert_true(ddp_s3_config_path_style(&c, "my-bucket"));
    ddp_s3_config_free(&c);
    setenv("AWS_REGION", "ap-south-1", 1);               /* AWS_REGION wins */
    setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.com", 1); /* the service-specific one wins */
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.region, "ap-south-1");
    assert_string_equal(c.endpoint, "https://s3.example.com");
    ddp_s3_config_free(&c);
    ddp_s3_config_set_endpoint("http://10.0.0.1:9000"); /* --endpoint wins over all */
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.endpoint, "http://10.0.0.1:9000");
    ddp_s3_config_free(&c);
    ddp_s3_config_set_endpoint("ftp://x");
    assert_int_equal(ddp_s3_config_load(&c), E_INVALIDARG);
    ddp_s3_config_set_endpoint("http://host/path");
    assert_int_equal(ddp_s3_config_load(&c), E_INVALIDARG);
}

static void test_profiles(void **state)
{
    (void)state;
    put(".aws/credentials", "# comment\n[default]\naws_access_key_id = AKDEF\naws_secret_access_key = SKDEF\n\n"
                            "[work]\n; another comment\naws_access_key_id=AKWORK\r\naws_secret_access_key =  SKWORK  \r\n"
                            "aws_session_token = TWORK\n");
    put(".aws/config", "[default]\nregion = us-west-2\n\n[profile work]\nregion = eu-central-1\nendpoint_url = http://ceph:7480\n"
                       "s3 =\n  addressing_style = virtual\n  endpoint_url = http://rgw.local:8080\n"
                       "[profile cfgonly]\naws_access_key_id = AKCFG\naws_secret_access_key = SKCFG\n");
    ddp_s3_config c;
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.access_key, "AKDEF");
    assert_string_equal(c.secret_key, "SKDEF");
    assert_null(c.session_token);
    assert_string_equal(c.region, "us-west-2");
    assert_non_null(strstr(c.cred_source, "credentials"));
    ddp_s3_config_free(&c);
    setenv("AWS_PROFILE", "work", 1);
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.access_key, "AKWORK");
    assert_string_equal(c.secret_key, "SKWORK");
    assert_string_equal(c.session_token, "TWORK");
    assert_string_equal(c.region, "eu-central-1");
    assert_string_equal(c.endpoint, "http://rgw.local:8080"); /* the nested s3 endpoint_url first */
    assert_false(c.path_style);                               /* addressing_style = virtual */
    ddp_s3_config_free(&c);
    setenv("AWS_PROFILE", "cfgonly", 1); /* credentials from the config file */
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.access_key, "AKCFG");
    ddp_s3_config_free(&c);
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1); /* the environment before any profile */
    setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.access_key, "AKENV");
    ddp_s3_config_free(&c);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_PROFILE", "nosuch", 1);
    assert_int_equal(ddp_s3_config_load(&c), HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED));
    /* files named by the environment */
    put("elsewhere/creds", "[nosuch]\naws_access_key_id = AKX\naws_secret_access_key = SKX\n");
    char *p = ddp_path_join(dir, "elsewhere/creds");
    setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
    free(p);
    assert_int_equal(ddp_s3_config_load(&c), S_OK);
    assert_string_equal(c.access_key, "AKX");
    ddp_s3_config_free(&c);
}

static void test_keys_and_chain_names(void **state)
{
    (void)state;
    char *k = ddp_s3_key_of_path("pre/fix", "/a b/%x\x01/\xc3\xa9/\xff.bin");
    assert_string_equal(k, "pre/fix/a%20b/%25x%01/\xc3\xa9/%FF.bin");
    free(k);
    k = ddp_s3_key_of_path("", "/.ddp-backup/manifest");
    assert_string_equal(k, ".ddp-backup/manifest");
    free(k);
    char *r = ddp_s3_previous_ref("b", "nightly/2", "b", "nightly/1");
    assert_string_equal(r, "1");
    char *pb, *pp;
    assert_int_equal(ddp_s3_resolve_previous("b", "nightly/2", r, &pb, &pp), S_OK);
    assert_string_equal(pb, "b");
    assert_string_equal(pp, "nightly/1");
    free(pb);
    free(pp);
    free(r);
    r = ddp_s3_previous_ref("b", "x/2", "c", "y/1");
    assert_string_equal(r, "s3://c/y/1");
    free(r);
    assert_int_equal(ddp_s3_resolve_previous("b", "x", "../etc", &pb, &pp), DDP_E_INVALID_DATA);
}

static void test_xml(void **state)
{
    (void)state;
    const char *x = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>a &lt;b&gt; &amp; &#233;</Message></Error>";
    char *c = ddp_s3_xml_text(x, strlen(x), "Code");
    assert_string_equal(c, "NoSuchKey");
    free(c);
    c = ddp_s3_xml_text(x, strlen(x), "Message");
    assert_string_equal(c, "a <b> & \xc3\xa9");
    free(c);
    assert_null(ddp_s3_xml_text(x, strlen(x), "Key"));
    assert_null(ddp_s3_xml_text(x, 20, "Code")); /* cut short: not found */
    const char *l = "<R><Contents><Key>a</Key></Contents><Contents><Key>b</Key></Contents></R>";
    size_t pos = 0, s, n;
    int count = 0;
    while (ddp_s3_xml_next(l, strlen(l), "Contents", &pos, &s, &n)) count++;
    assert_int_equal(count, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_and_chain_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
