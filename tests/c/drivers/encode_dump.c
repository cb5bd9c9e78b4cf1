/* encode_dump.c - writes the encoders' output for the hand-built spans of
 * tests/c/span_fixture.h (the rich span, a root span, two typical spans) so
 * tests/python/test_export_encoding.py can decode them with opentelemetry-proto.
 * usage: encode_dump proto|json OUTFILE */
#include <stdio.h>

#include "span_fixture.h"

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "proto") != 0 && strcmp(argv[1], "json") != 0)) {
        fprintf(stderr, "usage: encode_dump proto|json OUTFILE\n");
        return 2;
    }
    fx_rich r;
    fx_typical t1, t2, root;
    fx_resource res;
    fx_make_rich(&r);
    fx_make_typical(&t1, 1);
    fx_make_typical(&t2, 2);
    fx_make_typical(&root, 3);
    root.span.has_parent = 0;
    root.span.kind = ITUNA_SPAN_KIND_PRODUCER;
    root.span.status_code = ITUNA_STATUS_OK;
    fx_make_resource(&res);
    ituna_span *spans[4] = { &r.span, &root.span, &t1.span, &t2.span };
    ituna_buf b;
    ituna_buf_init(&b);
    int ok = argv[1][0] == 'p' ? ituna_otlp_encode_proto(spans, 4, &res.res, &b)
                               : ituna_otlp_encode_json(spans, 4, &res.res, &b);
    if (!ok) {
        fprintf(stderr, "encode_dump: encoding failed\n");
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
        perror(argv[2]);
        return 1;
    }
    ituna_buf_free(&b);
    return 0;
}
