/* perf/http_libs: the minimal handler compare.sh measures, on libmicrohttpd. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static const char BODY[] = "{\"status\":\"ok\",\"op\":\"hold_seats\"}";
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
	const char *version, const char *data, size_t *size, void **state)
{
	(void)cls;(void)url;(void)method;(void)version;(void)data;
	if (*state == NULL) { *state = (void*)1; return MHD_YES; }
	if (*size) { *size = 0; return MHD_YES; }
	struct MHD_Response *r = MHD_create_response_from_buffer(sizeof(BODY)-1, (void*)BODY, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}
int main(int argc, char **argv)
{
	int port = atoi(argv[1]); int threads = argc > 2 ? atoi(argv[2]) : 1;
	struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, port, NULL, NULL, handler, NULL,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT, 10000u, MHD_OPTION_END);
	if (!d) { perror("mhd"); return 1; }
	pause();
}
