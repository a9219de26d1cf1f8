/* The C interface between labkit/native/_tftp.c (one TFTP read transfer's steady phase) and
 * labkit/native/_tftp_pool.c (the threads that run them), passed as a PyCapsule: the pool runs
 * a transfer with no Python frame and no GIL on its way (see _tftp_pool.c). */
#ifndef LABKIT_TFTP_JOB_H
#define LABKIT_TFTP_JOB_H
#include <Python.h>

#define TFTP_JOB_CAPSULE "labkit.native._tftp._job_api"

typedef struct {
    /* With the GIL: _tftp.serve's keyword arguments checked and held; NULL + exception. */
    void *(*prepare)(PyObject *args, PyObject *kwargs);
    /* Without the GIL: the run, until an event the core must carry out. */
    void (*execute)(void *job);
    /* With the GIL: serve's result tuple (NULL + exception); the job is freed either way. */
    PyObject *(*finish)(void *job);
} TftpJobApi;

#endif
