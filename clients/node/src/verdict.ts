/**
 * The verdict the twilioguard service returns for one webhook request.
 *
 * @module
 */

import { timestampDate } from "@bufbuild/protobuf/wkt";

import {
  Algorithm as AlgorithmEnum,
  Reason as ReasonEnum,
  ReplayCheck as ReplayCheckEnum,
  type VerifyWebhookResponse,
} from "./gen/twilioguard/v1/verifier_pb.js";

/** Why a request is not valid, as the contract names it (e.g. "SIGNATURE_MISMATCH"). */
export type Reason = Exclude<keyof typeof ReasonEnum, "REASON_UNSPECIFIED">;

/**
 * Verdict is the service's answer for one webhook request. A request that is
 * not valid is a verdict (valid false, with a reason), not an error.
 */
export interface Verdict {
  /** True when the signature is one Twilio sends for this request. */
  valid: boolean;
  /** The account whose credential was tried (and matched, when valid); may be empty. */
  accountSid: string;
  /** Which secret matched: "auth_token", "previous_auth_token" or a SharedKey id; empty when not valid. */
  credential: string;
  /** The URL variant whose signature matched; empty when not valid. */
  matchedUrl: string;
  /** Why the request is not valid; absent when valid. */
  reason?: Reason;
  /** On a mismatch, a near-miss diagnosis when one is found; never a secret. */
  hint: string;
  /** The algorithm that matched; absent when not valid. */
  algorithm?: "HMAC_SHA1" | "HMAC_SHA256";
  /**
   * Whether this exact webhook was verified before within the service's
   * replay window (it is still genuine). Absent when unknown: the check did
   * not run or the duplicate store could not be reached.
   */
  duplicate?: boolean;
  /** When the first copy of a duplicate was verified. */
  firstSeenTime?: Date;
  /**
   * Whether the duplicate check ran on a valid request: "CHECKED", or
   * "UNAVAILABLE" when the duplicate store could not be reached. Absent when
   * the request is not valid or replay detection is off.
   */
  replayCheck?: "CHECKED" | "UNAVAILABLE";
}

/** toVerdict converts a VerifyWebhookResponse message. */
export function toVerdict(resp: VerifyWebhookResponse): Verdict {
  const v: Verdict = {
    valid: resp.valid,
    accountSid: resp.accountSid,
    credential: resp.credential,
    matchedUrl: resp.matchedUrl,
    hint: resp.hint,
  };
  if (!resp.valid) {
    // Invalid without a (known) reason is still invalid.
    const name = ReasonEnum[resp.reason] as keyof typeof ReasonEnum | undefined;
    v.reason = name === undefined || name === "REASON_UNSPECIFIED" ? "SIGNATURE_MISMATCH" : name;
  }
  if (resp.algorithm === AlgorithmEnum.HMAC_SHA1 || resp.algorithm === AlgorithmEnum.HMAC_SHA256) {
    v.algorithm = AlgorithmEnum[resp.algorithm] as "HMAC_SHA1" | "HMAC_SHA256";
  }
  if (resp.replayCheck === ReplayCheckEnum.CHECKED) {
    v.replayCheck = "CHECKED";
    if (resp.duplicate !== undefined) {
      v.duplicate = resp.duplicate;
    }
  } else if (resp.replayCheck === ReplayCheckEnum.UNAVAILABLE) {
    v.replayCheck = "UNAVAILABLE";
  }
  if (resp.firstSeenTime !== undefined) {
    v.firstSeenTime = timestampDate(resp.firstSeenTime);
  }
  return v;
}
