/*
 * ksm_helper: one test process of the differential KSM test, driven over a
 * line protocol by tests/differential/host_exec.py (see docs/DIFFERENTIAL.md).
 *
 * The process owns up to MAX_REGIONS anonymous private mappings ("regions")
 * at addresses chosen by the driver (MAP_FIXED_NOREPLACE, so the address
 * layout, and with it ksmd's scan order, is the same as on the emulated
 * machine). It fills pages with reproducible contents, advises them
 * MERGEABLE/UNMERGEABLE, calls prctl(PR_SET/GET_MEMORY_MERGE), forks, execs,
 * writes single words (COW) and reports, per page, what the kernel says
 * about it: /proc/self/pagemap (pfn, present), /proc/kpageflags (KSM, zero
 * page) and /proc/kpagecount.
 *
 * Protocol: one command per line on stdin, one reply line on stdout:
 *   "ok [key=value ...]" or "err <errno> <what>". EOF on stdin: exit(0).
 * The first line written after start (and after exec) is "ready pid=<pid>
 * zero_pfn=<pfn> merge_any=<0|1>".
 *
 * The helper never calls malloc after start and does no stdio: with
 * PR_SET_MEMORY_MERGE every new VMA of the process becomes mergeable, and the
 * driver wants only the test regions under KSM (see "isolate").
 *
 * Single-threaded. Build: gcc -O2 -Wall -Wextra -Werror -o ksm_helper ksm_helper.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef PR_GET_MEMORY_MERGE
#define PR_GET_MEMORY_MERGE 68
#endif
#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE 12
#endif
#ifndef MADV_UNMERGEABLE
#define MADV_UNMERGEABLE 13
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PAGE 4096UL
#define MAX_REGIONS 64
#define MAX_LINE 4096
#define MAX_REPLY (1 << 20)
#define KPF_KSM 21
#define KPF_ZERO_PAGE 24
#define PM_PFN_MASK ((1ULL << 55) - 1)
#define PM_PRESENT (1ULL << 63)

struct region {
  uintptr_t addr; /* 0: unused */
  size_t pages;
};

static struct region regions[MAX_REGIONS];
static char line[MAX_LINE];
static size_t line_len;
static char inbuf[MAX_LINE];
static size_t in_pos, in_end;
static char reply[MAX_REPLY];
static size_t reply_len;
static char self_exe[4096];

/* ---- output without stdio ---------------------------------------------- */

static void out_raw(const char* s, size_t n) {
  size_t room = sizeof(reply) - 1 - reply_len; /* one byte kept for '\n' */
  if (n > room) n = room;
  memcpy(reply + reply_len, s, n);
  reply_len += n;
}

static void out(const char* s) { out_raw(s, strlen(s)); }

static void out_u64(uint64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
  out_raw(tmp, (size_t)n);
}

static void out_i64(int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
  out_raw(tmp, (size_t)n);
}

static void flush_reply(void) {
  reply[reply_len++] = '\n';
  size_t off = 0;
  while (off < reply_len) {
    ssize_t w = write(1, reply + off, reply_len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(3); /* the driver is gone */
    }
    off += (size_t)w;
  }
  reply_len = 0;
}

static void reply_err(int e, const char* what) {
  reply_len = 0;
  out("err ");
  out_i64(e);
  out(" ");
  out(what);
  flush_reply();
}

/* ---- input ------------------------------------------------------------- */

/* Reads one line into `line` (without the newline). Returns 0 on EOF. */
static int read_line(void) {
  line_len = 0;
  for (;;) {
    if (in_pos == in_end) {
      ssize_t r = read(0, inbuf, sizeof(inbuf));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return 0;
      in_pos = 0;
      in_end = (size_t)r;
    }
    char c = inbuf[in_pos++];
    if (c == '\n') {
      line[line_len] = '\0';
      return 1;
    }
    if (line_len + 1 < sizeof(line)) line[line_len++] = c;
  }
}

static char* tokens[16];
static int ntokens;

static void split(void) {
  ntokens = 0;
  char* p = line;
  while (*p && ntokens < 16) {
    while (*p == ' ') p++;
    if (!*p) break;
    tokens[ntokens++] = p;
    while (*p && *p != ' ') p++;
    if (*p) *p++ = '\0';
  }
}

static int parse_u64(const char* s, uint64_t* v) {
  char* end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 0);
  if (errno || end == s || *end) return -1;
  *v = (uint64_t)x;
  return 0;
}

/* ---- content generators (shared definition with memnode FillMemory) ---- */

static uint64_t splitmix_state;

static uint64_t splitmix_next(void) {
  splitmix_state += 0x9E3779B97F4A7C15ULL;
  uint64_t z = splitmix_state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Page contents: "zero" (all 0), "byte" (every byte = arg), "seed" (the
 * splitmix64 stream seeded with arg, little-endian words from the first
 * byte of the page: FillMemory(random_seed=arg) over that one page). */
static int fill_page(unsigned char* p, const char* kind, uint64_t arg) {
  if (strcmp(kind, "zero") == 0) {
    memset(p, 0, PAGE);
  } else if (strcmp(kind, "byte") == 0) {
    memset(p, (int)(arg & 0xff), PAGE);
  } else if (strcmp(kind, "seed") == 0) {
    splitmix_state = arg;
    for (size_t i = 0; i < PAGE / 8; i++) {
      uint64_t w = splitmix_next();
      memcpy(p + 8 * i, &w, 8); /* x86-64: little-endian */
    }
  } else {
    return -1;
  }
  return 0;
}

/* ---- /proc readers ----------------------------------------------------- */

static int pread_u64(const char* path, uint64_t index, uint64_t* v) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t r = pread(fd, v, 8, (off_t)(index * 8));
  int e = errno;
  close(fd);
  if (r != 8) return r < 0 ? -e : -EIO;
  return 0;
}

static uint64_t zero_pfn(void) {
  /* A read fault on an untouched private anonymous page maps the zero page. */
  void* p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  volatile unsigned char c = *(volatile unsigned char*)p;
  (void)c;
  uint64_t pm = 0;
  if (pread_u64("/proc/self/pagemap", (uintptr_t)p / PAGE, &pm) != 0) pm = 0;
  munmap(p, PAGE);
  return (pm & PM_PRESENT) ? (pm & PM_PFN_MASK) : 0;
}

/* ---- commands ---------------------------------------------------------- */

static struct region* get_region(const char* tok) {
  uint64_t r;
  if (parse_u64(tok, &r) || r >= MAX_REGIONS || !regions[r].addr) return NULL;
  return &regions[r];
}

static int range_ok(struct region* rg, uint64_t first, uint64_t count) {
  return first <= rg->pages && count <= rg->pages - first;
}

/* mmap R ADDR PAGES [shared] */
static void cmd_mmap(void) {
  uint64_t r, addr, pages;
  int shared = ntokens == 5 && !strcmp(tokens[4], "shared");
  if ((ntokens != 4 && !shared) || parse_u64(tokens[1], &r) || parse_u64(tokens[2], &addr) ||
      parse_u64(tokens[3], &pages) || r >= MAX_REGIONS || regions[r].addr || !pages)
    return reply_err(EINVAL, "usage: mmap R ADDR PAGES [shared] (R unused)");
  void* p = mmap((void*)addr, pages * PAGE, PROT_READ | PROT_WRITE,
                 (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return reply_err(errno, "mmap");
  if ((uintptr_t)p != addr) {
    munmap(p, pages * PAGE);
    return reply_err(EEXIST, "mmap: kernel ignored MAP_FIXED_NOREPLACE");
  }
  if (madvise(p, pages * PAGE, MADV_NOHUGEPAGE) != 0) return reply_err(errno, "madvise NOHUGEPAGE");
  regions[r].addr = addr;
  regions[r].pages = pages;
  out("ok addr=");
  out_u64(addr);
  flush_reply();
}

/* fill R FIRST COUNT KIND ARG [STEP]: page FIRST+i gets KIND(ARG + i*STEP) */
static void cmd_fill(void) {
  struct region* rg;
  uint64_t first, count, arg, step = 0;
  if ((ntokens != 6 && ntokens != 7) || !(rg = get_region(tokens[1])) ||
      parse_u64(tokens[2], &first) || parse_u64(tokens[3], &count) || parse_u64(tokens[5], &arg) ||
      (ntokens == 7 && parse_u64(tokens[6], &step)) || !range_ok(rg, first, count))
    return reply_err(EINVAL, "usage: fill R FIRST COUNT KIND ARG [STEP]");
  for (uint64_t i = 0; i < count; i++) {
    unsigned char* p = (unsigned char*)(rg->addr + (first + i) * PAGE);
    if (fill_page(p, tokens[4], arg + i * step) != 0)
      return reply_err(EINVAL, "fill: unknown kind");
  }
  out("ok");
  flush_reply();
}

/* write R PAGE OFFSET VALUE: an 8-byte little-endian store */
static void cmd_write(void) {
  struct region* rg;
  uint64_t page, offset, value;
  if (ntokens != 5 || !(rg = get_region(tokens[1])) || parse_u64(tokens[2], &page) ||
      parse_u64(tokens[3], &offset) || parse_u64(tokens[4], &value) || page >= rg->pages ||
      offset > PAGE - 8)
    return reply_err(EINVAL, "usage: write R PAGE OFFSET VALUE");
  memcpy((void*)(rg->addr + page * PAGE + offset), &value, 8);
  out("ok");
  flush_reply();
}

/* madvise R FIRST COUNT ADVICE */
static void cmd_madvise(void) {
  struct region* rg;
  uint64_t first, count, advice;
  if (ntokens != 5 || !(rg = get_region(tokens[1])) || parse_u64(tokens[2], &first) ||
      parse_u64(tokens[3], &count) || parse_u64(tokens[4], &advice) || !range_ok(rg, first, count))
    return reply_err(EINVAL, "usage: madvise R FIRST COUNT ADVICE");
  if (madvise((void*)(rg->addr + first * PAGE), count * PAGE, (int)advice) != 0) {
    out("ok errno=");
    out_i64(errno);
  } else {
    out("ok errno=0");
  }
  flush_reply();
}

/* munmap R FIRST COUNT (the whole region forgets itself when fully unmapped) */
static void cmd_munmap(void) {
  struct region* rg;
  uint64_t first, count;
  if (ntokens != 4 || !(rg = get_region(tokens[1])) || parse_u64(tokens[2], &first) ||
      parse_u64(tokens[3], &count) || !range_ok(rg, first, count))
    return reply_err(EINVAL, "usage: munmap R FIRST COUNT");
  if (munmap((void*)(rg->addr + first * PAGE), count * PAGE) != 0) {
    out("ok errno=");
    out_i64(errno);
  } else {
    if (first == 0 && count == rg->pages) rg->addr = 0;
    out("ok errno=0");
  }
  flush_reply();
}

/* prctl_set V / prctl_get */
static void cmd_prctl(int set) {
  uint64_t v = 0;
  if (set && (ntokens != 2 || parse_u64(tokens[1], &v)))
    return reply_err(EINVAL, "usage: prctl_set V");
  int r = set ? prctl(PR_SET_MEMORY_MERGE, (unsigned long)v, 0UL, 0UL, 0UL)
              : prctl(PR_GET_MEMORY_MERGE, 0UL, 0UL, 0UL, 0UL);
  if (r < 0) {
    out("ok errno=");
    out_i64(errno);
  } else {
    out("ok errno=0 value=");
    out_i64(r);
  }
  flush_reply();
}

static int is_region(uintptr_t start, uintptr_t end) {
  for (int r = 0; r < MAX_REGIONS; r++) {
    if (!regions[r].addr) continue;
    uintptr_t rs = regions[r].addr, re = rs + regions[r].pages * PAGE;
    if (start >= rs && end <= re) return 1;
  }
  return 0;
}

/* isolate: MADV_UNMERGEABLE on every VMA that is not (inside) a test region,
 * so that under PR_SET_MEMORY_MERGE only the test regions are under KSM.
 * Replies the number of VMAs advised. */
static int do_isolate(int* advised) {
  static char maps[1 << 16];
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, maps + len, sizeof(maps) - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    if (len == sizeof(maps) - 1) break;
  }
  close(fd);
  maps[len] = '\0';
  *advised = 0;
  char* p = maps;
  while (*p) {
    char* nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    char* dash;
    uintptr_t start = (uintptr_t)strtoull(p, &dash, 16);
    uintptr_t end = (uintptr_t)strtoull(dash + 1, NULL, 16);
    /* [vsyscall] lies above user space: madvise would fail, skip it. */
    if (!strstr(p, "[vsyscall]") && !is_region(start, end)) {
      if (madvise((void*)start, end - start, MADV_UNMERGEABLE) == 0) (*advised)++;
    }
    if (!nl) break;
    p = nl + 1;
  }
  return 0;
}

static void cmd_isolate(void) {
  int advised;
  int r = do_isolate(&advised);
  if (r < 0) return reply_err(-r, "isolate: /proc/self/maps");
  out("ok advised=");
  out_i64(advised);
  flush_reply();
}

/* observe R FIRST COUNT: per page "pagemap,kpageflags,kpagecount" (hex) */
static void cmd_observe(void) {
  struct region* rg;
  uint64_t first, count;
  if (ntokens != 4 || !(rg = get_region(tokens[1])) || parse_u64(tokens[2], &first) ||
      parse_u64(tokens[3], &count) || !range_ok(rg, first, count))
    return reply_err(EINVAL, "usage: observe R FIRST COUNT");
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  int kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
  int kc = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
  if (pm < 0 || kf < 0 || kc < 0) {
    int e = errno;
    if (pm >= 0) close(pm);
    if (kf >= 0) close(kf);
    if (kc >= 0) close(kc);
    return reply_err(e, "observe: open /proc/self/pagemap, /proc/kpageflags, /proc/kpagecount");
  }
  out("ok pages=");
  for (uint64_t i = 0; i < count; i++) {
    uint64_t vpn = (rg->addr / PAGE) + first + i;
    uint64_t e = 0, flags = 0, mapcount = 0;
    if (pread(pm, &e, 8, (off_t)(vpn * 8)) != 8) e = 0;
    if (e & PM_PRESENT) {
      uint64_t pfn = e & PM_PFN_MASK;
      if (pread(kf, &flags, 8, (off_t)(pfn * 8)) != 8) flags = 0;
      if (pread(kc, &mapcount, 8, (off_t)(pfn * 8)) != 8) mapcount = 0;
    }
    char tmp[80];
    int n = snprintf(tmp, sizeof(tmp), "%s%" PRIx64 ":%" PRIx64 ":%" PRIx64, i ? "," : "", e, flags,
                     mapcount);
    out_raw(tmp, (size_t)n);
  }
  close(pm);
  close(kf);
  close(kc);
  flush_reply();
}

/* fork CMD_FIFO REPLY_FIFO: the child serves the two FIFOs from now on. */
static void cmd_fork(void) {
  if (ntokens != 3) return reply_err(EINVAL, "usage: fork CMD_FIFO REPLY_FIFO");
  pid_t pid = fork();
  if (pid < 0) return reply_err(errno, "fork");
  if (pid == 0) {
    int in = open(tokens[1], O_RDONLY | O_CLOEXEC);
    int o = open(tokens[2], O_WRONLY | O_CLOEXEC);
    if (in < 0 || o < 0) _exit(4);
    if (dup2(in, 0) < 0 || dup2(o, 1) < 0) _exit(4);
    close(in);
    close(o);
    in_pos = in_end = 0;
    out("ready pid=");
    out_i64(getpid());
    flush_reply();
    return;
  }
  out("ok pid=");
  out_i64(pid);
  flush_reply();
}

/* exec: re-executes this program (same pid, same stdin/stdout, fresh mm). */
static void cmd_exec(void) {
  char* argv[] = {self_exe, "--after-exec", NULL};
  char* envp[] = {NULL};
  execve(self_exe, argv, envp);
  reply_err(errno, "execve");
}

static void hello(void) {
  int merge_any = prctl(PR_GET_MEMORY_MERGE, 0UL, 0UL, 0UL, 0UL);
  int advised = 0;
  /* After an exec that kept MMF_VM_MERGE_ANY, every VMA of the new image is
   * mergeable: keep only the (not yet created) test regions under KSM. */
  if (merge_any == 1) do_isolate(&advised);
  out("ready pid=");
  out_i64(getpid());
  out(" zero_pfn=");
  out_u64(zero_pfn());
  out(" merge_any=");
  out_i64(merge_any);
  out(" isolated=");
  out_i64(advised);
  flush_reply();
}

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  /* Children are reaped by the kernel: the driver waits for /proc/PID to go. */
  signal(SIGCHLD, SIG_IGN);
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
  if (n <= 0) return 2;
  self_exe[n] = '\0';
  hello();
  while (read_line()) {
    split();
    if (ntokens == 0) {
      reply_err(EINVAL, "empty command");
      continue;
    }
    const char* c = tokens[0];
    if (!strcmp(c, "mmap"))
      cmd_mmap();
    else if (!strcmp(c, "fill"))
      cmd_fill();
    else if (!strcmp(c, "write"))
      cmd_write();
    else if (!strcmp(c, "madvise"))
      cmd_madvise();
    else if (!strcmp(c, "munmap"))
      cmd_munmap();
    else if (!strcmp(c, "prctl_set"))
      cmd_prctl(1);
    else if (!strcmp(c, "prctl_get"))
      cmd_prctl(0);
    else if (!strcmp(c, "isolate"))
      cmd_isolate();
    else if (!strcmp(c, "observe"))
      cmd_observe();
    else if (!strcmp(c, "fork"))
      cmd_fork();
    else if (!strcmp(c, "exec"))
      cmd_exec();
    else if (!strcmp(c, "exit")) {
      out("ok");
      flush_reply();
      _exit(0);
    } else if (!strcmp(c, "ping")) {
      out("ok");
      flush_reply();
    } else {
      reply_err(EINVAL, "unknown command");
    }
  }
  return 0;
}
