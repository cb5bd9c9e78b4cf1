/* export_file.h - the file exporter's one extra accessor (see export_file.c). */
#ifndef ITUNA_EXPORT_FILE_H
#define ITUNA_EXPORT_FILE_H

#include "internal.h"

/* Path the file exporter appends to. Borrowed: valid until e is destroyed.
 * Only for exporters made by ituna_exporter_file_create(); NULL otherwise. */
ITUNA_HIDDEN const char *ituna_exporter_file_path(ituna_exporter *e);

/* A file exporter appending to path (NULL or empty: the default file name). */
ITUNA_HIDDEN ituna_err ituna_exporter_file_open(const ituna_config *cfg, const char *path,
                                                ituna_exporter **out, char *errstr, size_t errstr_size);

/* An exporter that hands every batch to copy (a local file) and then to primary,
 * whose result it returns; it owns both. (export_tee.c) */
ITUNA_HIDDEN ituna_err ituna_exporter_tee_create(ituna_exporter *primary, ituna_exporter *copy,
                                                 ituna_exporter **out, char *errstr, size_t errstr_size);

#endif
