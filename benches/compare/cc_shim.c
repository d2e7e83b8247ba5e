/* LD_PRELOAD shim for the load comparison: gives a peer proxy's TCP sockets the congestion
 * control named in BENCH_CC before they listen or connect, as balancerd's --congestion does,
 * so every proxy's own legs run the same algorithm (HAProxy 2.6, nginx and httpd have no
 * such setting). Accepted connections take the listening socket's algorithm. The name is read
 * when the library loads: nginx empties the environment of its worker processes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static char cc[32];

__attribute__((constructor)) static void read_name(void) {
  const char *v = getenv("BENCH_CC");
  if (v && strlen(v) < sizeof cc) strcpy(cc, v);
}

int socket(int domain, int type, int protocol) {
  static int (*real)(int, int, int);
  if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
  int fd = real(domain, type, protocol);
  if (fd >= 0 && *cc && (domain == AF_INET || domain == AF_INET6) &&
      (type & 0xf) == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP))
    setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc));
  return fd;
}
