// client_test.mjs BASE_URL API_KEY — the official `openai` client against `gptoss serve` (run by
// run.sh): chat completions whole and streamed (the same text for the same seed), a completion,
// the models list, the Responses API, and a bad request surfacing as the client's APIError 400.
import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: 600_000 });
const messages = [{ role: "user", content: "hello from js" }];

const whole = await client.chat.completions.create({
  model: "gpt-oss", messages, max_tokens: 3, temperature: 1, seed: 5,
});
assert.equal(whole.object, "chat.completion");
assert.equal(whole.usage.completion_tokens, 3);
assert.equal(whole.choices[0].finish_reason, "length");
const text = whole.choices[0].message.content;
assert.equal(typeof text, "string");

const stream = await client.chat.completions.create({
  model: "gpt-oss", messages, max_tokens: 3, temperature: 1, seed: 5, stream: true,
  stream_options: { include_usage: true },
});
let streamed = "", finish = null, usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed += c.delta?.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
}
assert.equal(streamed, text);
assert.equal(finish, "length");
assert.equal(usage.completion_tokens, 3);
assert.equal(usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens - 1);

const completion = await client.completions.create({ model: "gpt-oss", prompt: "Once", max_tokens: 2 });
assert.equal(completion.usage.completion_tokens, 2);

const models = await client.models.list();
assert.equal(models.data[0].id, "gpt-oss");

const response = await client.responses.create({
  model: "gpt-oss", input: "hello from js", max_output_tokens: 2,
});
assert.equal(response.object, "response");
assert.equal(response.status, "incomplete");
assert.equal(typeof response.output_text, "string");

let rstream = "", completed = null;
for await (const ev of await client.responses.create({
  model: "gpt-oss", input: "hello from js", max_output_tokens: 2, stream: true,
})) {
  if (ev.type === "response.output_text.delta") rstream += ev.delta;
  if (ev.type === "response.incomplete" || ev.type === "response.completed") completed = ev.response;
}
assert.ok(completed, "no response.completed / response.incomplete event");
assert.equal(completed.usage.output_tokens, 2);

await assert.rejects(
  client.chat.completions.create({ model: "gpt-oss", messages, temperature: -1 }),
  (e) => e instanceof OpenAI.APIError && e.status === 400 && /temperature/.test(e.message),
);
console.log("openai client: all checks passed");
