/*
 * Apps at run time: the config file's [app] sections and the apps store.
 */
#include "gateway.h"
