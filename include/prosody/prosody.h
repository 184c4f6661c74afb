// File: prosody/prosody.h
//
// Umbrella header: everything an application needs.
#pragma once

#include "prosody/client.h"
#include "prosody/clock.h"
#include "prosody/config.h"
#include "prosody/context.h"
#include "prosody/handler.h"
#include "prosody/logging.h"
#include "prosody/message.h"
#include "prosody/producer.h"
#include "prosody/result.h"
#include "prosody/timer.h"
#include "prosody/types.h"
