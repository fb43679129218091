/* greenroom virtual lab only: lets Debian's FRR daemons start in a lab guest.
 *
 * FRR's zebra and bgpd ask libcap for CAP_SYS_ADMIN (for network-namespace VRFs) at start.
 * Lab guests have no CAP_SYS_ADMIN in their bounding set, so cap_set_proc() fails with EPERM
 * and the daemons exit. This preloaded wrapper removes, from every set FRR asks for, the
 * capabilities that are not in the process's bounding set, then calls the real
 * cap_set_proc(). It grants nothing: a process can never gain a capability outside its
 * bounding set, and the guest's bounding set is unchanged. FRR then runs with what the guest
 * has (CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE), which is all BGP and routes need.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/prctl.h>

typedef void *cap_t;
typedef int cap_value_t;

#define FLAG_SETS 3      /* CAP_EFFECTIVE, CAP_PERMITTED, CAP_INHERITABLE */
#define CAP_CLEAR_ 0
#define LAST_CAP 63

int cap_set_proc(cap_t caps)
{
	static int (*real)(cap_t);
	static int (*set_flag)(cap_t, int, int, const cap_value_t *, int);
	cap_value_t cap;
	int flag;

	if (!real)
		real = (int (*)(cap_t))dlsym(RTLD_NEXT, "cap_set_proc");
	if (!set_flag)
		set_flag = (int (*)(cap_t, int, int, const cap_value_t *, int))
			dlsym(RTLD_DEFAULT, "cap_set_flag");
	if (!real)
		return -1;
	if (caps && set_flag) {
		for (cap = 0; cap <= LAST_CAP; cap++) {
			if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0)
				continue; /* in the bounding set, or not a capability */
			for (flag = 0; flag < FLAG_SETS; flag++)
				set_flag(caps, flag, 1, &cap, CAP_CLEAR_);
		}
	}
	return real(caps);
}
