// The result record every export fills (see main.go).
#ifndef GRS_RESULT_H
#define GRS_RESULT_H
#include <stdint.h>

typedef struct {
	int32_t  kind;
	int32_t  has_oid;
	uint64_t oid;
	uint64_t serials[2];
	char*    message;
	uint8_t* data;
	int64_t  len;
	uint64_t v[3];
} grs_result;

#endif
