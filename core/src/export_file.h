/* export_file.h - the file exporter's one extra accessor (see export_file.c). */
#ifndef ITUNA_EXPORT_FILE_H
#define ITUNA_EXPORT_FILE_H

#include "internal.h"

/* Path the file exporter appends to. Borrowed: valid until e is destroyed.
 * Only for exporters made by ituna_exporter_file_create(); NULL otherwise. */
ITUNA_HIDDEN const char *ituna_exporter_file_path(ituna_exporter *e);

#endif
