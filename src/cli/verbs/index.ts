/** The operator verbs of the governance core (users, controls, tasks, incidents, routing, audit, evidence, credentials). */
import type { CliVerb } from '../verb.ts';
import { auditVerb } from './audit.ts';
import { controlsVerb } from './controls.ts';
import { credentialsVerb } from './credentials.ts';
import { evidenceVerb } from './evidence.ts';
import { incidentsVerb } from './incidents.ts';
import { routingVerb } from './routing.ts';
import { tasksVerb } from './tasks.ts';
import { usersVerb } from './users.ts';

export const coreVerbs: readonly CliVerb[] = [usersVerb, controlsVerb, tasksVerb, incidentsVerb, routingVerb, auditVerb, evidenceVerb, credentialsVerb];
